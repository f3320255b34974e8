#!/usr/bin/python3
"""Writes the seed corpora under tests/fuzz/corpus/<harness>/: small excerpts of the real files in ../shared/data and
tiny files made here in each format (a few KB per harness). Rerun after a format change; libFuzzer grows the corpus
from these (scripts/fuzz.sh keeps what it finds in build-fuzz/, not here). The token shard seed is written by
`bmos data prepare` (see token_shard below), as no Python HDF5 writer is assumed."""
import bz2, gzip, io, json, os, shutil, struct, subprocess, sys, tempfile
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "..", "shared", "data")
CORPUS = os.path.join(HERE, "corpus")
SPLIT = b"\n@@@@\n"  # tests/fuzz/fuzz_target.h kSplit


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(rel, mode="rb"):
    with open(os.path.join(DATA, rel), mode) as f:
        return f.read()


def head_lines(rel, n):
    with open(os.path.join(DATA, rel), "rb") as f:
        return b"".join(f.readline() for _ in range(n))


# ------------------------------------------------------------------------------------------------------ safetensors
def safetensors(tensors, metadata=None, pad=True):
    header, buf = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buf), len(buf) + len(raw)]}
        buf += raw
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + buf


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
put("safetensors", "f32_f16_bf16", safetensors([("a", "F32", [2, 2], f32(1, 2, 3, 4)),
                                                 ("b", "F16", [3], b"\x00\x3c\x00\x40\x00\xc0"),
                                                 ("c", "BF16", [1, 2], b"\x80\x3f\x00\x40")], {"format": "pt"}))
put("safetensors", "ints", safetensors([("i64", "I64", [2], struct.pack("<2q", 1, -1)),
                                        ("u32", "U32", [2], struct.pack("<2I", 7, 0xFFFFFFFF)),
                                        ("i32", "I32", [1], struct.pack("<i", 3)), ("i8", "I8", [2], b"\x01\xff"),
                                        ("u8", "U8", [1], b"\x05"), ("bool", "BOOL", [2], b"\x01\x00")]))
put("safetensors", "empty_and_scalar", safetensors([("e", "F32", [0, 3], b""), ("s", "F32", [], f32(5))], pad=False))

# -------------------------------------------------------------------------------------------- pytorch_model.bin
try:
    import torch

    def torch_save(obj):
        b = io.BytesIO()
        torch.save(obj, b)
        return b.getvalue()

    base = torch.arange(12, dtype=torch.float32)
    put("torch_bin", "dict_views", torch_save({"w": base.view(3, 4), "t": base.view(3, 4).t(), "tail": base[8:]}))
    put("torch_bin", "ordered_dtypes", torch_save(OrderedDict([("h", torch.ones(2, dtype=torch.float16)),
                                                               ("b", torch.ones(2, dtype=torch.bfloat16)),
                                                               ("l", torch.tensor([1, 2])),
                                                               ("m", torch.tensor([True, False]))])))
    put("torch_bin", "one_entry", torch_save({"only": torch.zeros(1)}))
except ImportError:
    print("make_seeds: no python3 torch: torch_bin seeds not rewritten", file=sys.stderr)

# -------------------------------------------------------------------------------------------------- llama2.c model
def llama2c(version, dim=4, hidden=8, layers=1, heads=2, kv=2, vocab=8, seq=4, shared=True):
    hd = dim // heads
    n = (vocab * dim + layers * dim * 2 + layers * dim * heads * hd + 2 * layers * dim * kv * hd +
         layers * heads * hd * dim + 3 * layers * dim * hidden + dim)
    if version == 0:
        n += seq * hd  # freq_cis real + imag: 2 * seq * hd/2
        head = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    else:
        head = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv, vocab, seq, 1 if shared else 0)
        head += b"\x00" * (256 - len(head))
    if not shared:
        n += vocab * dim
    return head + struct.pack("<%df" % n, *[0.01 * (i % 7) for i in range(n)])


put("llama2c_model", "v0", llama2c(0))
put("llama2c_model", "v0_unshared", llama2c(0, shared=False))
put("llama2c_model", "v1", llama2c(1))
put("llama2c_model", "v1_gqa", llama2c(1, heads=4, kv=2, dim=8))

# -------------------------------------------------------------------------------------------------- config.json
for fam in sorted(os.listdir(os.path.join(DATA, "models"))):
    p = os.path.join(DATA, "models", fam, "config.json")
    if os.path.exists(p):
        put("hf_config", fam, read(os.path.join("models", fam, "config.json")))

# --------------------------------------------------------------------------------- model.safetensors.index.json
st = read("models/stories260K-hf/model.safetensors")
names = [k for k in json.loads(st[8:8 + struct.unpack("<Q", st[:8])[0]]) if k != "__metadata__"]
put("hf_index", "stories260K", json.dumps({"metadata": {"total_size": len(st)},
                                           "weight_map": {k: "model-00001-of-00001.safetensors" for k in names}}, indent=1))

# ------------------------------------------------------------------------------------------------- job + overrides
for rel in ["stories260k_e4.yaml", "families/opt-125m_e4.yaml", "quickstart_student.yaml"]:
    with open(os.path.join(ROOT, "configs", rel), "rb") as f:
        put("job_yaml", rel.replace("/", "_"), f.read())
with open(os.path.join(ROOT, "configs", "stories260k_e1.yaml"), "rb") as f:
    put("job_yaml", "with_overrides", f.read() + SPLIT + b"quant.experts=2\ntrain.lr=1.0e-3\ndata.seq_len=64\n")

# ------------------------------------------------------------------------------------------------- tokenizers
put("llama2c_tokenizer", "tok512", read("models/stories260K/tok512.bin"))
pieces = [b"<unk>", b"<s>", b"</s>"] + [bytes([c]) for c in b" abcdeinot"] + [b" a", b"in", b"the", b" the"]
put("llama2c_tokenizer", "tiny", struct.pack("<i", 4) + b"".join(struct.pack("<fi", -float(i), len(p)) + p
                                                                  for i, p in enumerate(pieces)))
put("sentencepiece_model", "tok512", read("models/stories260K/tok512.model"))


def trim_tokenizer_json(rel, keep_ids=300, n_merges=80):
    j = json.loads(read(rel))
    m = j["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < keep_ids}
    merges = []
    for mg in m["merges"]:
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(mg)
        if len(merges) >= n_merges:
            break
    m["vocab"], m["merges"] = vocab, merges
    post = json.dumps(j.get("post_processor"))
    added = j.get("added_tokens") or []
    j["added_tokens"] = [t for i, t in enumerate(added) if i < 4 or i >= len(added) - 2 or t["content"] in post]
    return json.dumps(j, ensure_ascii=False).encode()


for fam in ["gpt2-tokenizer", "opt-125m", "llama-3.2-1b", "qwen3-0.6b"]:
    put("bpe_tokenizer_json", fam, trim_tokenizer_json("models/%s/tokenizer.json" % fam))

vocab = json.loads(read("models/opt-125m/vocab.json"))
small = {k: v for k, v in vocab.items() if v < 300}
merges = [l for l in read("models/opt-125m/merges.txt", "r").splitlines()[1:]
          if l.split(" ")[0] in small and l.split(" ")[-1] in small and l.replace(" ", "") in small][:80]
put("bpe_vocab_merges", "opt-125m", SPLIT.join([json.dumps(small, ensure_ascii=False).encode(),
                                               ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
                                               read("models/opt-125m/tokenizer_config.json"),
                                               read("models/opt-125m/special_tokens_map.json")]))
put("bpe_vocab_merges", "gpt2-no-config", SPLIT.join([json.dumps(small, ensure_ascii=False).encode(),
                                                      ("#version: 0.2\n" + "\n".join(merges[:20]) + "\n").encode()]))

# ----------------------------------------------------------------------------------------------------- corpora
c4 = head_lines("text/c4/c4-train.00000-of-01024.first1000.jsonl", 3)
c4 = b"\n".join(json.dumps({"text": json.loads(l)["text"][:300], "url": "u"}).encode() for l in c4.splitlines()) + b"\n"
wiki = read("text/wikitext-2-raw/wiki.valid.raw")[:1200]
put("corpus", "jsonl", b"\x01" + c4)
put("corpus", "jsonl_gz", b"\x01" + gzip.compress(c4, mtime=0))
put("corpus", "jsonl_bad_skip", b"\x03" + c4 + b"{not json\n[1]\n{\"text\": 3}\n")
put("corpus", "text_lines", b"\x00" + wiki)
put("corpus", "text_blank_gz", b"\x04" + gzip.compress(wiki, mtime=0))
put("corpus", "text_file", b"\x08" + wiki[:400])

# ------------------------------------------------------------------------------------------------------- tasks
put("tasks", "piqa", b"\x00" + head_lines("tasks/piqa/valid.jsonl", 2) + SPLIT + head_lines("tasks/piqa/valid-labels.lst", 2))
put("tasks", "winogrande", b"\x01" + head_lines("tasks/winogrande/dev.jsonl", 2))
hs = b"".join(bz2.decompress(read("tasks/hellaswag/hellaswag_val_full.txt.bz2")).splitlines(True)[:12])
put("tasks", "hellaswag_txt", b"\x02" + hs)
put("tasks", "hellaswag_bz2", b"\x02" + bz2.compress(hs[:len(hs) // 2]))
put("tasks", "arc_easy", b"\x03" + head_lines("tasks/arc_easy/test.jsonl", 2))
put("tasks", "arc_challenge", b"\x03" + head_lines("tasks/arc_challenge/test.jsonl", 2))
put("tasks", "boolq", b"\x04" + head_lines("tasks/boolq/dev.questions_only.jsonl", 3))

# ------------------------------------------------------------------------------------------ checkpoint, packed
put("checkpoint_manifest", "manifest", json.dumps({"format": "bmos-checkpoint-manifest", "files": [
    {"name": "model.safetensors", "bytes": 1045368, "crc32": 3735928559},
    {"name": "optimizer.safetensors", "bytes": 2090000, "crc32": 1},
    {"name": "train_state.json", "bytes": 812, "crc32": 0}]}, indent=2))
quant = {"method": "binarymos", "experts": 4, "format_version": 1, "bit_order": "row_major_lsb_first_u32", "scale_dtype": "fp16",
         "fp_dtype": "fp16", "embedding_bits": 16}
cfg = json.loads(read("models/stories260K-hf/config.json"))
put("packed_config", "stories260K_binarymos", json.dumps(dict(cfg, quantization=quant), indent=1))
put("packed_config", "opt_sign", json.dumps(dict(json.loads(read("models/opt-125m/config.json")),
                                                 quantization=dict(quant, method="sign", experts=1)), indent=1))
put("packed_config", "stories260K_format2", json.dumps(dict(cfg, quantization=dict(
    quant, format_version=2, bit_order="tiles16x30_lsb_first_u32", embedding_bits=8)), indent=1))

# ------------------------------------------------------------------------------------- bmos serve request bodies
put("serve_request", "minimal", json.dumps({"prompt": "Once upon a time"}))
put("serve_request", "full", json.dumps({"prompt": "Lily and Ben", "max_tokens": 32, "temperature": 0.8,
                                         "top_p": 0.95, "seed": 7, "stop": ["\n", "The end"], "stream": True,
                                         "n": 1, "logprobs": None}))
put("serve_request", "stop_string", json.dumps({"prompt": "", "stop": "x", "temperature": 0, "seed": None}))
put("serve_request", "bad_types", json.dumps({"prompt": ["a"], "max_tokens": 1.5, "top_p": "1"}))

# -------------------------------------------------------------------------------------------------- token shard
bmos = os.path.join(ROOT, "build", "bmos")
if os.path.exists(bmos):
    with tempfile.TemporaryDirectory(prefix="bmos_fuzz_seed_") as tmp:
        with open(os.path.join(tmp, "tiny.txt"), "w") as f:
            f.write("Once upon a time there was a cat.\nThe cat sat.\n\nA dog ran home.\n")
        with open(os.path.join(tmp, "job.yaml"), "w") as f:
            f.write(f"""run: {{name: seed, out_dir: {tmp}/run, seed: 1, threads: 1}}
teacher: {{format: llama2c, path: {DATA}/models/stories260K/stories260K.bin, dtype: fp32}}
tokenizer: {{kind: llama2c, path: {DATA}/models/stories260K/tok512.bin}}
quant: {{method: binarymos, experts: 4, layers: ["layers.*.attention.*"], init: svd}}
data:
  seq_len: 16
  cache_dir: {tmp}/cache
  sources:
    - {{name: t, format: text, files: [{tmp}/tiny.txt], weight: 1.0}}
train: {{tokens: 1024, batch_size: 1, lr: 1.0e-3}}
""")
        subprocess.run([bmos, "data", "prepare", os.path.join(tmp, "job.yaml")], check=True, stdout=subprocess.DEVNULL)
        for dp, _, fs in os.walk(os.path.join(tmp, "cache")):
            for fn in fs:
                if fn.endswith(".h5"):
                    shutil.copy(os.path.join(dp, fn), os.path.join(CORPUS, "token_shard", "tiny.h5")) \
                        if os.makedirs(os.path.join(CORPUS, "token_shard"), exist_ok=True) is None else None
else:
    print("make_seeds: no build/bmos: token_shard seed not rewritten", file=sys.stderr)

for h in sorted(os.listdir(CORPUS)):
    fs_ = os.listdir(os.path.join(CORPUS, h))
    print("%-22s %2d files %7d bytes" % (h, len(fs_), sum(os.path.getsize(os.path.join(CORPUS, h, f)) for f in fs_)))
