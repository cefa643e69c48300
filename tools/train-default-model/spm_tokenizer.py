"""The teacher's SentencePiece-style tokenizer in Python, the same algorithm as bitrun's tokenizer_spm.cpp
(dummy-prefix space, spaces as U+2581, best-score-first merges of adjacent pieces while the merged text is a
normal token, byte fallback), so that training text is tokenized exactly as bitrun tokenizes prompts. The
export step checks this by comparing against `bitrun perplexity --logits-out` token ids."""

import heapq

SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class SpmTokenizer:
    def __init__(self, tokens, scores, types, bos, eos):
        self.tokens, self.scores, self.types = list(tokens), list(scores), list(types)
        self.bos, self.eos = bos, eos
        self.text_ids = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty in (NORMAL, USER_DEFINED) and t not in self.text_ids:
                self.text_ids[t] = i
        self.byte_ids = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty == BYTE:
                self.byte_ids[int(t[3:5], 16)] = i
        if len(self.byte_ids) != 256:
            raise ValueError("vocabulary lacks some of the 256 byte-fallback tokens")

    @classmethod
    def from_gguf_metadata(cls, meta):
        return cls(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.scores"], meta["tokenizer.ggml.token_type"],
                   meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"])

    def encode(self, text, add_bos=True):
        out = [self.bos] if add_bos else []
        if text:
            out += self._encode_escaped(SPACE + text.replace(" ", SPACE))
        return out

    def _encode_escaped(self, s):
        # Symbols are characters; a linked list of [start, length] merged best score first, leftmost on ties.
        n = len(s)
        start = list(range(n))
        length = [1] * n
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        heap = []

        def push(left, right):
            if left < 0 or right < 0:
                return
            piece = s[start[left]:start[left] + length[left] + length[right]]
            tid = self.text_ids.get(piece)
            if tid is not None:
                heapq.heappush(heap, (-self.scores[tid], left, right, length[left] + length[right]))

        for i in range(1, n):
            push(i - 1, i)
        while heap:
            _, left, right, total = heapq.heappop(heap)
            if length[left] == 0 or length[right] == 0 or length[left] + length[right] != total:
                continue
            length[left] += length[right]
            length[right] = 0
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left], left)
            push(left, nxt[left])

        ids = []
        i = 0
        while i >= 0:
            piece = s[start[i]:start[i] + length[i]]
            tid = self.text_ids.get(piece)
            if tid is not None:
                ids.append(tid)
            else:
                ids.extend(self.byte_ids[b] for b in piece.encode("utf-8"))
            i = nxt[i]
        return ids

    def decode(self, ids):
        """Text of `ids` as bitrun shows it: leading BOS and control tokens dropped, bytes reassembled, the dummy
        prefix space removed."""
        raw = bytearray()
        for tid in ids:
            ty = self.types[tid]
            if ty == BYTE:
                raw.append(int(self.tokens[tid][3:5], 16))
            elif ty in (NORMAL, USER_DEFINED):
                raw += self.tokens[tid].replace(SPACE, " ").encode("utf-8")
        text = raw.decode("utf-8", errors="replace")
        return text[1:] if text.startswith(" ") else text
