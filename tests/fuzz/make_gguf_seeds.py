#!/usr/bin/env python3
"""Writes the GGUF reader's fuzzing seeds (tests/fuzz/corpus/gguf/): small valid GGUF v3 files with every metadata
value type and tensors of the float, quantized and ternary types bitrun reads. Small on purpose: libFuzzer mutates
files of a few hundred bytes far faster than a model."""
import os
import struct
import sys

ALIGN = 32


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


# value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64
def metadata(arch):
    return [
        kv("general.architecture", 8, s(arch)),
        kv("general.alignment", 4, struct.pack("<I", ALIGN)),
        kv("t.u8", 0, b"\x07"), kv("t.i8", 1, b"\xfe"), kv("t.u16", 2, struct.pack("<H", 600)),
        kv("t.i16", 3, struct.pack("<h", -600)), kv("t.i32", 5, struct.pack("<i", -70000)),
        kv("t.f32", 6, struct.pack("<f", 1.5)), kv("t.bool", 7, b"\x01"), kv("t.u64", 10, struct.pack("<Q", 1 << 40)),
        kv("t.i64", 11, struct.pack("<q", -(1 << 40))), kv("t.f64", 12, struct.pack("<d", 2.25)),
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + s("<s>") + s("a") + s("\u2581b")),
        kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, -1, -2)),
        kv(arch + ".embedding_length", 4, struct.pack("<I", 128)),
        kv(arch + ".block_count", 4, struct.pack("<I", 1)),
    ]


def gguf(kvs, tensors):
    """tensors: (name, dims, ggml type, data bytes)"""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, blobs, offset = b"", b"", 0
    for name, dims, gtype, data in tensors:
        infos += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", gtype, offset)
        pad = (-len(data)) % ALIGN
        blobs += data + b"\0" * pad
        offset += len(data) + pad
    out = head + infos
    out += b"\0" * ((-len(out)) % ALIGN)
    return out + blobs


def main(directory):
    os.makedirs(directory, exist_ok=True)
    f32 = struct.pack("<8f", *[0.5 * i - 1 for i in range(8)])
    f16 = struct.pack("<8e", *[0.25 * i for i in range(8)])
    q8_0 = struct.pack("<e", 0.1) + bytes(range(32))                          # one block of 32
    q6_k = bytes((i * 37) % 256 for i in range(192)) + bytes(16) + struct.pack("<e", 0.01)   # one block of 256
    i2_s = bytes([0x55, 0x96, 0x69, 0x5a] * 8) + struct.pack("<f", 0.75)      # 128 ternary weights + scale
    tq2_0 = bytes([0x55, 0xaa] * 32) + struct.pack("<e", 0.5)                 # one block of 256
    seeds = {
        "floats.gguf": gguf(metadata("llama"), [("a.weight", [4, 2], 0, f32), ("b.weight", [8], 1, f16)]),
        "quantized.gguf": gguf(metadata("llama"), [("q8.weight", [32], 8, q8_0), ("q6.weight", [256], 14, q6_k)]),
        "ternary.gguf": gguf(metadata("bitnet-b1.58"),
                             [("blk.0.attn_q.weight", [128, 1], 36, i2_s), ("t2.weight", [256], 35, tq2_0)]),
        "empty.gguf": gguf([], []),
    }
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gguf"))
