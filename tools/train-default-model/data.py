"""Training text: TinyStories paragraphs (minus the held-out lines) regrouped into stories, plus stories sampled
from the teacher; packed into one token stream and cut into fixed-length windows in a seeded order."""

import re

import numpy as np
import torch

from modeling import KvCache

# A paragraph opening like these starts a new story (the excerpt has lost TinyStories' story separators; this
# recovers most boundaries: about 800 of its 4,356 paragraphs open with "Once upon a time" / "Once there was").
_STORY_START = re.compile(r"^(Once upon a time|Once there was|Once,)")


def nonempty_lines(path):
    """Every non-empty line, stripped: the unit of bitrun's perplexity protocol."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def split_heldout(lines, n_heldout):
    """The first `n_heldout` non-empty lines are the evaluation text (the lines ../shared/README.md scores the
    teacher on); training uses only the rest."""
    return lines[:n_heldout], lines[n_heldout:]


def group_stories(paragraphs):
    stories, current = [], []
    for p in paragraphs:
        if current and _STORY_START.match(p):
            stories.append("\n".join(current))
            current = []
        current.append(p)
    if current:
        stories.append("\n".join(current))
    return stories


def encode_story(tok, text):
    # BOS + story + EOS: bitrun stops at EOS, so the student learns to end a story (the teacher, trained the
    # llama2.c way, ends one by predicting BOS; see distill_targets in train.py).
    return tok.encode(text, add_bos=True) + [tok.eos]


@torch.no_grad()
def sample_teacher_stories(teacher, bos, eos, n_stories, max_len, temperature, generator, batch=250, progress=None):
    """Stories sampled from the teacher from BOS at `temperature`, each ended where the teacher predicts BOS (its
    end of story) or at max_len; the end is written as EOS. Returns a list of token lists."""
    stories = []
    while len(stories) < n_stories:
        b = min(batch, n_stories - len(stories))
        tokens = torch.full((b, 1), bos, dtype=torch.long)
        cache = KvCache(teacher.shape, b, max_len)
        x = tokens
        done = torch.zeros(b, dtype=torch.bool)
        for _ in range(max_len - 1):
            logits = teacher(x, cache=cache)
            probs = (logits[:, -1].double() / temperature).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            nxt[done] = eos
            tokens = torch.cat([tokens, nxt], 1)
            done |= nxt[:, 0] == bos
            x = nxt
            if bool(done.all()):
                break
        for row in tokens.tolist():
            out = [bos]
            for t in row[1:]:
                if t in (bos, eos):
                    break
                out.append(t)
            stories.append(out + [eos])
        if progress:
            progress(len(stories), n_stories)
    return stories


class WindowStream:
    """Documents packed into one stream (documents in a seeded random order per epoch) and cut into windows of
    seq_len + 1 tokens (inputs and next-token targets)."""

    def __init__(self, documents, seq_len, seed):
        self.documents, self.seq_len = documents, seq_len
        self.rng = np.random.default_rng(seed)
        self.epoch_windows = []

    def _refill(self):
        order = self.rng.permutation(len(self.documents))
        stream = np.concatenate([np.asarray(self.documents[i], dtype=np.int64) for i in order])
        offset = int(self.rng.integers(0, self.seq_len))   # windows do not always start at a document start
        n = (len(stream) - offset) // (self.seq_len + 1)
        windows = stream[offset:offset + n * (self.seq_len + 1)].reshape(n, self.seq_len + 1)
        self.epoch_windows = list(windows[self.rng.permutation(n)])

    def tokens_per_epoch(self):
        return sum(len(d) for d in self.documents)

    def batch(self, batch_size):
        rows = []
        while len(rows) < batch_size:
            if not self.epoch_windows:
                self._refill()
            rows.append(self.epoch_windows.pop())
        return torch.from_numpy(np.stack(rows))


def trajectory_prompts(documents, n, min_len, max_len, seed):
    """n prompts for self-distillation: the first k tokens (BOS included) of seeded random training documents,
    k ~ U[min_len, max_len] (clipped to the document), the shape of a user's story opening."""
    rng = np.random.default_rng(seed)
    prompts = []
    for i in rng.integers(0, len(documents), n):
        doc = documents[int(i)][:-1]                      # never the EOS: a prompt is an unfinished story
        k = int(rng.integers(min_len, max_len + 1))
        prompts.append(list(doc[:max(1, min(k, len(doc)))]))
    return prompts


@torch.no_grad()
def greedy_trajectories(student, prompts, length, eos, batch=256, progress=None):
    """The student's own greedy (argmax) continuation of each prompt to `length` tokens, one token at a time with
    a KV cache; prompts of one length are decoded together. After an EOS the row is padded with EOS. Returns
    (tokens [n, length] in the prompts' order, prompt lengths [n])."""
    from modeling import KvCache
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = torch.full((len(prompts), length), eos, dtype=torch.long)
    done_count = 0
    start = 0
    while start < len(order):
        plen = len(prompts[order[start]])
        group = [i for i in order[start:start + batch] if len(prompts[i]) == plen]
        start += len(group)
        x = torch.tensor([prompts[i] for i in group])
        b = len(group)
        cache = KvCache(student.shape, b, length)
        logits = student(x, torch.arange(plen), torch.ones(plen, plen, dtype=torch.bool).tril(), cache)
        seq, ended = x, torch.zeros(b, dtype=torch.bool)
        for pos in range(plen, length):
            nxt = logits[:, -1].argmax(-1)
            nxt[ended] = eos
            ended |= nxt == eos
            seq = torch.cat([seq, nxt[:, None]], 1)
            if pos + 1 == length or bool(ended.all()):
                break
            logits = student(nxt[:, None], torch.tensor([pos]), torch.ones(1, pos + 1, dtype=torch.bool), cache)
        out[group, :seq.shape[1]] = seq
        done_count += b
        if progress:
            progress(done_count, len(prompts))
    return out, torch.tensor([len(p) for p in prompts])
