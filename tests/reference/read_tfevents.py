#!/usr/bin/python3
"""Every scalar of a folder's TensorBoard event files, read the way TensorBoard reads them, with nothing of ours: the
TFRecord framing checked record by record with a CRC-32C written here from its definition, each record decoded by the
protobuf library (Debian's python3-protobuf) from the public field numbers in tensorboard_event.proto (compiled with
protoc into a temporary folder). The independent reader tests/test_tensorboard.cpp holds trainer/tensorboard.cpp to.

    /usr/bin/python3 tests/reference/read_tfevents.py RUN_DIR [--records]

Prints one JSON object per scalar, {"tag": ..., "step": ..., "value": ...}, sorted by step then tag, after what
TensorBoard does with a folder: files in name order; a SessionLog START at step s drops every earlier value at steps
>= s (a run restarted from a checkpoint); of one tag at one step, the last value counts. With --records, instead one
object per record as stored, {"file": name, "what": file_version | session_start | summary, "step": ..., "tags":
[...]}. On stderr, the files and record counts. Exit status 1, naming the file and the byte offset, on a bad CRC, a
truncated record, a record the protobuf parser refuses or that holds fields outside the public definition, or a file
not starting with "brain.Event:2".
"""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli polynomial, reflected
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def fail(msg):
    print("read_tfevents: " + msg, file=sys.stderr)
    sys.exit(1)


def records(path):
    """(offset, data) of each TFRecord of the file, both CRCs checked."""
    with open(path, "rb") as f:
        blob = f.read()
    at = 0
    while at < len(blob):
        if at + 12 > len(blob):
            fail(f"{path}: offset {at}: truncated record header")
        header = blob[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", blob[at + 8:at + 12])
        if masked(header) != length_crc:
            fail(f"{path}: offset {at}: the length's CRC is {length_crc:#010x}, expected {masked(header):#010x}")
        end = at + 12 + length + 4
        if end > len(blob):
            fail(f"{path}: offset {at}: record of {length} bytes runs past the end of the file")
        data = blob[at + 12:at + 12 + length]
        (data_crc,) = struct.unpack("<I", blob[end - 4:end])
        if masked(data) != data_crc:
            fail(f"{path}: offset {at}: the data's CRC is {data_crc:#010x}, expected {masked(data):#010x}")
        yield at, data
        at = end


def event_module():
    with tempfile.TemporaryDirectory(prefix="bmos_test_tfevents_") as out:
        subprocess.run(["protoc", "-I", HERE, "--python_out", out, os.path.join(HERE, "tensorboard_event.proto")],
                       check=True)
        sys.path.insert(0, out)
        import tensorboard_event_pb2  # generated just above
        sys.path.remove(out)
    return tensorboard_event_pb2


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--records"]):
        fail("usage: read_tfevents.py RUN_DIR [--records]")
    as_stored = sys.argv[2:] == ["--records"]
    if crc32c(b"123456789") != 0xE3069283:  # the CRC-32C check value (RFC 3720, B.4)
        fail("this file's CRC-32C is wrong")
    pb = event_module()
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*tfevents*")))  # TensorBoard's rule for an events file
    if not files:
        fail(f"{sys.argv[1]}: no events file")
    values = {}  # (tag, step) -> value
    for path in files:
        n = 0
        for at, data in records(path):
            ev = pb.Event()
            try:
                ev.ParseFromString(data)
            except Exception as e:  # the library's DecodeError
                fail(f"{path}: offset {at}: not an Event: {e}")
            ev.DiscardUnknownFields()  # what remains re-encodes to the same bytes only if nothing was unknown
            if ev.SerializeToString() != data:
                fail(f"{path}: offset {at}: the record holds fields outside event.proto/summary.proto, or is not "
                     "in canonical encoding")
            what = ev.WhichOneof("what")
            if n == 0 and (what != "file_version" or ev.file_version != "brain.Event:2"):
                fail(f"{path}: the first record is not file_version brain.Event:2")
            start = what == "session_log" and ev.session_log.status == pb.SessionLog.START
            if start:
                values = {k: v for k, v in values.items() if k[1] < ev.step}
            elif what == "summary":
                for v in ev.summary.value:
                    if v.WhichOneof("value") != "simple_value":
                        fail(f"{path}: offset {at}: value '{v.tag}' is not a simple_value")
                    values[(v.tag, ev.step)] = v.simple_value
            if as_stored:
                print(json.dumps({"file": os.path.basename(path), "what": "session_start" if start else what,
                                  "step": ev.step, "tags": [v.tag for v in ev.summary.value]}))
            n += 1
        print(f"read_tfevents: {path}: {n} records", file=sys.stderr)
    if as_stored:
        return
    for (tag, step), value in sorted(values.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(json.dumps({"tag": tag, "step": step, "value": value}))


if __name__ == "__main__":
    main()
