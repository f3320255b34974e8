#!/usr/bin/python3
"""Writes torch.save files for tests/test_torch_bin.cpp with PyTorch itself, from tensors the test wrote as
safetensors (read here with a plain header parser: python3-safetensors is not needed).

    /usr/bin/python3 tests/reference/make_torch_bin.py SRC.safetensors OUT_DIR [--big-mb N]

OUT_DIR receives:
  plain.bin        dict {name: tensor} of every SRC tensor in file order (each its own storage), as transformers'
                   save_pretrained writes it, then views of the 2-D F32 tensor "base" sharing its storage:
                   "base.tied" = base.detach() (another tensor object, as tied weights in a state_dict),
                   "base.same" = base (the same object: the pickle memo), "base.t" = base.t(),
                   "base.slice" = base[1:, 1::2]
  ordereddict.bin  the SRC tensors in a collections.OrderedDict with a _metadata attribute, as
                   torch.save(model.state_dict()) writes
  protocol4.bin    the SRC tensors saved with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL)
  single.bin       {"base": base}: a one-entry dict, which pickle writes with SETITEM
  legacy.bin       the pre-1.6 format (_use_new_zipfile_serialization=False)
  evil.bin         a dict holding an object whose __reduce__ is (os.system, ("touch OUT_DIR/pwned",))
  eval.bin         a dict holding an object whose __reduce__ is (builtins.eval, ("open('OUT_DIR/pwned','w')",))
  numpy.bin        a dict holding a numpy array
  parameter.bin    a dict holding a torch.nn.Parameter (torch._utils._rebuild_parameter)
  quantized.bin    a dict holding a quantized tensor
  list.bin         a list of tensors at the top level
  nested.bin       {"state_dict": {...}}
  int.bin          {"base": tensor, "step": 3}
  overrun.bin      a tensor whose view (offset 2, size 3) runs past its 4-element storage
  crafted_*.bin    zip archives around hand-written pickles: truncated, an unknown memo entry, an opcode torch.save
                   never writes, os.system through protocol 4's STACK_GLOBAL
  big.bin          (with --big-mb N) N MiB of F32 tensors of 4 MiB each, for the memory test
"""
import builtins
import collections
import json
import os
import struct
import sys
import zipfile

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
          "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"])
    out = {}
    for name, info in entries:
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        # clone: each tensor gets its own storage (frombuffer would alias the bytearray)
        t = torch.frombuffer(raw, dtype=dtype).clone() if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


class Reduce:
    """An object that pickles as fn(*args): what a malicious file uses to run code in an unrestricted unpickler."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def main():
    src, out = sys.argv[1], sys.argv[2]
    big_mb = int(sys.argv[sys.argv.index("--big-mb") + 1]) if "--big-mb" in sys.argv else 0
    os.makedirs(out, exist_ok=True)
    tensors = read_safetensors(src)
    base = tensors["base"]

    plain = dict(tensors)
    plain["base.tied"] = base.detach()
    plain["base.same"] = base
    plain["base.t"] = base.t()
    plain["base.slice"] = base[1:, 1::2]
    torch.save(plain, os.path.join(out, "plain.bin"))

    od = collections.OrderedDict(tensors)
    od._metadata = collections.OrderedDict([("", {"version": 1})])
    torch.save(od, os.path.join(out, "ordereddict.bin"))
    torch.save(tensors, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    torch.save(tensors, os.path.join(out, "protocol4.bin"), pickle_protocol=4)
    torch.save({"base": base}, os.path.join(out, "single.bin"))

    pwned = os.path.join(out, "pwned")
    torch.save({"base": base, "x": Reduce(os.system, ("touch " + pwned,))}, os.path.join(out, "evil.bin"))
    torch.save({"base": base, "x": Reduce(builtins.eval, ("open(%r, 'w')" % pwned,))}, os.path.join(out, "eval.bin"))
    torch.save({"base": base, "x": base.numpy()}, os.path.join(out, "numpy.bin"))
    torch.save({"base": torch.nn.Parameter(base)}, os.path.join(out, "parameter.bin"))
    q = torch.quantize_per_tensor(base, scale=0.1, zero_point=0, dtype=torch.qint8)
    torch.save({"base": q}, os.path.join(out, "quantized.bin"))
    torch.save([base], os.path.join(out, "list.bin"))
    torch.save({"state_dict": {"base": base}}, os.path.join(out, "nested.bin"))
    torch.save({"base": base, "step": 3}, os.path.join(out, "int.bin"))
    storage = torch.arange(4, dtype=torch.float32).storage()
    overrun = Reduce(torch._utils._rebuild_tensor_v2, (storage, 2, (3,), (1,), False, collections.OrderedDict()))
    torch.save({"overrun": overrun}, os.path.join(out, "overrun.bin"))

    with zipfile.ZipFile(os.path.join(out, "plain.bin")) as z:
        pickle = z.read("plain/data.pkl")
    crafted = {
        "truncated": pickle[:len(pickle) // 2],
        "memo": b"\x80\x02h\x05.",
        "opcode": b"\x80\x02I1\n.",
        "stack_global": b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.",
    }
    for name, data in crafted.items():
        with zipfile.ZipFile(os.path.join(out, "crafted_%s.bin" % name), "w") as z:
            z.writestr("archive/data.pkl", data)
            z.writestr("archive/version", "3\n")

    if big_mb:
        gen = torch.Generator().manual_seed(0)
        big = {"w%03d" % i: torch.randn(1024, 1024, generator=gen) for i in range(big_mb // 4)}
        torch.save(big, os.path.join(out, "big.bin"))


if __name__ == "__main__":
    main()
