"""BERT-base-cased for sequence classification, in plain torch (no `transformers` dependency).

Same architecture and state-dict names as Hugging Face's
`BertForSequenceClassification(BertConfig(vocab_size=28996, num_labels=2))` - 108,311,810
parameters - so a fine-tuned checkpoint saved from there loads with --weights. Written to trace:
no Python control flow on tensor values, only the batch dimension may vary, tuple output (the
`return_dict=False` form torch.neuron.trace needs), and no torch API newer than 1.13 except
`scaled_dot_product_attention`, used only where torch has it (see `FUSED_ATTENTION`).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch import nn

from ..buckets import DEFAULT_SEQ_LEN, MAX_SEQ_LEN, LengthDistribution, RequestPool, bucket_for, parse_buckets, \
    parse_seq_len_dist
from . import get_model


# torch >= 2.0 has scaled_dot_product_attention, which dispatches to fused (flash / memory-efficient)
# kernels on CUDA: the explicit matmul-softmax-matmul reached only 0.65x the reference's bf16 big-batch
# throughput on an H200. torch 1.x (torch-neuron hosts) keeps the explicit path. Chosen once, here
# or per build (BertConfig.fused_attention), never per tensor, so a trace records one path.
FUSED_ATTENTION = hasattr(nn.functional, "scaled_dot_product_attention")


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 28996  # bert-base-cased
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = MAX_SEQ_LEN
    type_vocab_size: int = 2
    num_labels: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    initializer_range: float = 0.02
    # How attention is computed; not part of the architecture (same parameters, same state dict).
    fused_attention: bool = FUSED_ATTENTION


# bert-base-cased vocabulary ids of the special tokens; ordinary word pieces start above 999.
PAD_ID, CLS_ID, SEP_ID, FIRST_WORD_ID = 0, 101, 102, 1000
# Additive attention-mask value for padded positions: large enough to zero the softmax, small
# enough to stay finite in fp16/bf16 (what Hugging Face's BERT used for years).
MASKED_SCORE = -10000.0


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        # Not saved in the state dict: it is computed, and slicing it keeps the trace shape-only.
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).unsqueeze(0),
                             persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.size(1)]
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.dropout)
        if c.fused_attention and not FUSED_ATTENTION:
            raise ValueError(f"fused attention needs torch >= 2.0 (scaled_dot_product_attention); "
                             f"this is torch {torch.__version__}")
        self.fused_attention = c.fused_attention  # a plain bool: the trace follows one path

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:  # [B,S,H] -> [B,heads,S,head_size]
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_size).permute(0, 2, 1, 3)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.split_heads(proj(hidden)) for proj in (self.query, self.key, self.value))
        if self.fused_attention:  # the same math: softmax(q k^T / sqrt(head_size) + mask_bias) v
            context = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask_bias, dropout_p=self.dropout.p if self.training else 0.0)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + mask_bias
            context = torch.matmul(self.dropout(torch.softmax(scores, dim=-1)), v)
        context = context.permute(0, 2, 1, 3).contiguous()
        return context.view(context.size(0), context.size(1), self.num_heads * self.head_size)


class BertSelfOutput(nn.Module):
    """Dense + dropout + residual LayerNorm: the `attention.output` and `output` blocks."""

    def __init__(self, c: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c, c.hidden_size)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, mask_bias), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = nn.GELU()  # the exact (erf) GELU of the original BERT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertSelfOutput(c, c.intermediate_size)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, mask_bias)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, mask_bias)
        return hidden


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden[:, 0]))  # the [CLS] token


class BertModel(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)

    def forward(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        hidden = self.embeddings(input_ids, token_type_ids)
        # [B,S] of 1 (attend) / 0 (padding) -> additive bias [B,1,1,S] in the activations' dtype.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * MASKED_SCORE
        return self.pooler(self.encoder(hidden, mask_bias))


class BertForSequenceClassification(nn.Module):
    def __init__(self, c: BertConfig = BertConfig()):
        super().__init__()
        self.bert = BertModel(c)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.hidden_size, c.num_labels)
        self.apply(lambda m: init_weights(m, c.initializer_range))

    def forward(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor]:
        return (self.classifier(self.dropout(self.bert(input_ids, attention_mask, token_type_ids))),)


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's own initialisation (normal, std 0.02), so random activations stay sane."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear):
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
        nn.init.zeros_(module.weight[module.padding_idx])
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def seq_len_of(config) -> int:
    problems = get_model("bert").size_problems(config)  # the rule the parent checks too
    if problems:
        raise ValueError(problems[0])
    return config.seq_len or DEFAULT_SEQ_LEN


def build(config) -> nn.Module:
    seq_len_of(config)  # a sequence the model cannot embed is refused before the slow build
    return BertForSequenceClassification()


def example_inputs(batch: int, config) -> tuple[torch.Tensor, ...]:
    """Synthetic sentence pairs as a tokenizer would emit them (no tokenizer is downloaded).

    Each row is `[CLS] words [SEP] words [SEP]` followed by padding, with a seeded random length
    between half and all of seq_len, so the attention mask and segment ids both matter.
    """
    seq_len = seq_len_of(config)
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(max(1, seq_len // 2), seq_len + 1, (batch, 1), generator=generator)
    return sentence_pairs(lengths, seq_len, generator)


def sentence_pairs(lengths: torch.Tensor, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Rows of real lengths `lengths` [B,1] padded to `seq_len`: ids, attention mask, segment ids."""
    batch = lengths.size(0)
    position = torch.arange(seq_len).unsqueeze(0)
    input_ids = torch.randint(FIRST_WORD_ID, BertConfig.vocab_size, (batch, seq_len), generator=generator)
    input_ids[:, 0] = CLS_ID
    input_ids[position == lengths // 2] = SEP_ID
    input_ids[position == lengths - 1] = SEP_ID
    attention_mask = (position < lengths).long()
    input_ids = input_ids * attention_mask  # PAD_ID is 0
    token_type_ids = ((position > lengths // 2) & (position < lengths)).long()
    return input_ids, attention_mask, token_type_ids


# Rows drawn ahead of the run and cycled through: drawing and building inputs per request would
# sit in the measured time, and a fixed pool makes the padding ratio reproducible.
POOL_ROWS = 2048
MIN_POOL_REQUESTS = 16


def request_pool(batch: int, config) -> RequestPool | None:
    """Variable-length requests (--seq-len-dist, --buckets), or None for today's fixed input.

    Without --buckets every request is padded to --seq-len (128); without --seq-len-dist the rows'
    lengths are drawn as example_inputs draws them, between half and all of the largest length.
    """
    if not (config.seq_len_dist or config.buckets):
        return None
    buckets = parse_buckets(config.buckets) if config.buckets else [seq_len_of(config)]
    limit = buckets[-1]
    distribution = (parse_seq_len_dist(config.seq_len_dist) if config.seq_len_dist
                    else LengthDistribution("uniform", low=max(1, limit // 2), high=limit))
    rng, generator = random.Random(3), torch.Generator().manual_seed(3)
    examples = [sentence_pairs(torch.randint(max(1, b // 2), b + 1, (batch, 1), generator=generator), b, generator)
                for b in buckets]
    requests = []
    for _ in range(max(MIN_POOL_REQUESTS, POOL_ROWS // batch)):
        lengths = [distribution.sample(rng, limit) for _ in range(batch)]
        bucket = bucket_for(max(lengths), buckets)
        inputs = sentence_pairs(torch.tensor(lengths).unsqueeze(1), buckets[bucket], generator)
        real = sum(lengths)
        requests.append((bucket, inputs, real, batch * buckets[bucket] - real))
    return RequestPool(buckets=buckets, examples=examples, requests=requests)
