"""Minimal GGUF v3 reading and writing: enough to read the float teacher and to write the float intermediate
file that `bitrun convert` turns into the committed ternary model. Only F32 tensors are handled; everything
else (the ternary packing, alignment rules of the final file) is bitrun's job."""

import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
ALIGNMENT = 32

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
           I64: "<q", F64: "<d"}
GGML_F32 = 0


class GgufError(Exception):
    pass


class _Cursor:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise GgufError("unexpected end of file at offset %d" % self.pos)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self):
        n = self.take("<Q")
        if self.pos + n > len(self.data):
            raise GgufError("string runs past the end of the file at offset %d" % self.pos)
        s = bytes(self.data[self.pos:self.pos + n]).decode("utf-8")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            etype, n = self.take("<I"), self.take("<Q")
            return [self.value(etype) for _ in range(n)]
        if vtype not in _SCALAR:
            raise GgufError("unknown metadata value type %d" % vtype)
        return self.take(_SCALAR[vtype])


def read_gguf(path):
    """Returns (metadata dict, tensors dict name -> float32 array shaped [rows, row_len] or [n])."""
    with open(path, "rb") as f:
        data = f.read()
    c = _Cursor(data)
    if data[:4] != GGUF_MAGIC:
        raise GgufError("%s: not a GGUF file" % path)
    c.pos = 4
    version = c.take("<I")
    if version not in (2, 3):
        raise GgufError("%s: unsupported GGUF version %d" % (path, version))
    n_tensors, n_kv = c.take("<Q"), c.take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        ne = [c.take("<Q") for _ in range(c.take("<I"))]
        infos.append((name, ne, c.take("<I"), c.take("<Q")))
    align = int(meta.get("general.alignment", ALIGNMENT))
    base = (c.pos + align - 1) // align * align
    tensors = {}
    for name, ne, ttype, offset in infos:
        if ttype != GGML_F32:
            raise GgufError("%s: tensor %s has ggml type %d; only F32 is read here" % (path, name, ttype))
        count = int(np.prod(ne))
        start = base + offset
        if start + 4 * count > len(data):
            raise GgufError("%s: tensor %s runs past the end of the file" % (path, name))
        arr = np.frombuffer(data, dtype="<f4", count=count, offset=start).astype(np.float32)
        tensors[name] = arr.reshape(list(reversed(ne))) if len(ne) > 1 else arr
    return meta, tensors


def _pack_value(vtype, value):
    if vtype == STRING:
        raw = value.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw
    return struct.pack(_SCALAR[vtype], value)


class GgufWriter:
    """Metadata keeps insertion order; every value carries an explicit GGUF type so the file is unambiguous."""

    def __init__(self):
        self.kv = []
        self.tensors = []

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def add_array(self, key, etype, values):
        self.kv.append((key, ARRAY, (etype, list(values))))

    def add_tensor(self, name, array):
        """`array` is float32 with the row length last (numpy order), as ggml's ne reversed."""
        arr = np.ascontiguousarray(array, dtype="<f4")
        self.tensors.append((name, arr))

    def write(self, path):
        out = bytearray(GGUF_MAGIC)
        out += struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for key, vtype, value in self.kv:
            out += _pack_value(STRING, key) + struct.pack("<I", vtype)
            if vtype == ARRAY:
                etype, values = value
                out += struct.pack("<IQ", etype, len(values))
                for v in values:
                    out += _pack_value(etype, v)
            else:
                out += _pack_value(vtype, value)
        offset = 0
        for name, arr in self.tensors:
            ne = list(reversed(arr.shape))
            out += _pack_value(STRING, name) + struct.pack("<I", len(ne))
            out += struct.pack("<%dQ" % len(ne), *ne)
            out += struct.pack("<IQ", GGML_F32, offset)
            offset += (arr.nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        out += b"\0" * ((-len(out)) % ALIGNMENT)
        for _, arr in self.tensors:
            out += arr.tobytes()
            out += b"\0" * ((-arr.nbytes) % ALIGNMENT)
        with open(path, "wb") as f:
            f.write(out)
