#!/usr/bin/python3
"""Logits of a Hugging Face LLaMA-like (llama, mistral, qwen2, qwen3) or OPT folder, written out by hand from
transformers' modeling code (no transformers import): the independent reference tests/test_families.cpp holds our C++
model to. Weights from model.safetensors, else pytorch_model.bin (torch.load).

    /usr/bin/python3 tests/reference/hf_reference.py MODEL_DIR TOKENS_FILE OUT_FILE

TOKENS_FILE: token ids separated by whitespace (one sequence). OUT_FILE: the logits (T, vocab) as raw little-endian
float32. Computed in float64 (HF's formulas: rotate-half RoPE with its inv_freq and llama3 scaling, RMSNorm,
repeat_kv GQA, causal + sliding-window mask, SwiGLU MLP; OPT: learned positions at offset 2, LayerNorm, pre- or
post-LN (do_layer_norm_before), ReLU fc1/fc2, biases, project_in/out, final_layer_norm only in pre-LN models).
"""
import os
import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        t = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).to(torch.float64)
    return out


def read_weights(model_dir):
    if os.path.exists(model_dir + "/model.safetensors"):
        return read_safetensors(model_dir + "/model.safetensors")
    if os.path.exists(model_dir + "/pytorch_model.bin.index.json"):
        with open(model_dir + "/pytorch_model.bin.index.json") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["pytorch_model.bin"]
    out = {}
    for shard in shards:
        out.update({k: v.to(torch.float64) for k, v in torch.load(model_dir + "/" + shard, map_location="cpu").items()})
    return out


def layer_norm(x, w, b, eps=1e-5):  # nn.LayerNorm
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def causal_mask(T, window=None):
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)
    return torch.zeros(T, T, dtype=torch.float64).masked_fill(~allowed, float("-inf"))


def opt_logits(cfg, w, tokens):  # OPTForCausalLM (modeling_opt.py)
    w = {("model." + k if k.startswith("decoder.") else k): v for k, v in w.items()}
    T = tokens.numel()
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = D // H
    pre = cfg.get("do_layer_norm_before", True)
    d = "model.decoder."
    x = w[d + "embed_tokens.weight"][tokens]
    if d + "project_in.weight" in w:
        x = x @ w[d + "project_in.weight"].T
    x = x + w[d + "embed_positions.weight"][torch.arange(T) + 2]  # OPTLearnedPositionalEmbedding's offset
    mask = causal_mask(T)

    def lin(h, name):
        return h @ w[name + ".weight"].T + w[name + ".bias"]

    for l in range(cfg["num_hidden_layers"]):
        p = d + "layers.%d." % l
        residual = x
        h = layer_norm(x, w[p + "self_attn_layer_norm.weight"], w[p + "self_attn_layer_norm.bias"]) if pre else x
        q = (lin(h, p + "self_attn.q_proj") * hd ** -0.5).view(T, H, hd).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj").view(T, H, hd).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj").view(T, H, hd).transpose(0, 1)
        a = torch.softmax(q @ k.transpose(1, 2) + mask, dim=-1) @ v
        x = residual + lin(a.transpose(0, 1).reshape(T, D), p + "self_attn.out_proj")
        if not pre:
            x = layer_norm(x, w[p + "self_attn_layer_norm.weight"], w[p + "self_attn_layer_norm.bias"])
        residual = x
        h = layer_norm(x, w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"]) if pre else x
        x = residual + lin(torch.relu(lin(h, p + "fc1")), p + "fc2")
        if not pre:
            x = layer_norm(x, w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"])
    if pre and not cfg.get("_remove_final_layer_norm", False):
        x = layer_norm(x, w[d + "final_layer_norm.weight"], w[d + "final_layer_norm.bias"])
    if d + "project_out.weight" in w:
        x = x @ w[d + "project_out.weight"].T
    head = w["lm_head.weight"] if "lm_head.weight" in w else w[d + "embed_tokens.weight"]
    return x @ head.T


def rms_norm(x, w, eps):  # LlamaRMSNorm / Qwen2RMSNorm / Qwen3RMSNorm
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def inv_freq(cfg, head_dim):  # _compute_default_rope_parameters, then _compute_llama3_parameters
    base = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float64) / head_dim))
    rs = cfg.get("rope_scaling")
    if rs is None:
        return inv
    assert rs.get("rope_type", rs.get("type")) == "llama3", rs
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_l)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def main():
    model_dir, tokens_file, out_file = sys.argv[1:4]
    with open(model_dir + "/config.json") as f:
        cfg = json.load(f)
    family = cfg.get("model_type", "llama")
    w = read_weights(model_dir)
    with open(tokens_file) as f:
        tokens = torch.tensor([int(t) for t in f.read().split()], dtype=torch.int64)
    if family == "opt":
        write_logits(opt_logits(cfg, w, tokens), out_file)
        return
    T = tokens.numel()
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KVH = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or D // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    window = None
    if family == "mistral":
        window = cfg.get("sliding_window")
    elif family in ("qwen2", "qwen3"):
        assert not cfg.get("use_sliding_window", False)

    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq(cfg, hd))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # (T, hd); attention_scaling 1.0 for default and llama3

    mask = causal_mask(T, window)

    x = w["model.embed_tokens.weight"][tokens]  # (T, D)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name):
            y = h @ w[p + "self_attn.%s.weight" % name].T
            if p + "self_attn.%s.bias" % name in w:
                y = y + w[p + "self_attn.%s.bias" % name]
            return y

        q = proj("q_proj").view(T, H, hd).transpose(0, 1)  # (H, T, hd)
        k = proj("k_proj").view(T, KVH, hd).transpose(0, 1)
        v = proj("v_proj").view(T, KVH, hd).transpose(0, 1)
        if family == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=0)  # repeat_kv
        v = v.repeat_interleave(H // KVH, dim=0)
        scores = q @ k.transpose(1, 2) / math.sqrt(hd) + mask
        a = torch.softmax(scores, dim=-1) @ v  # (H, T, hd)
        x = x + a.transpose(0, 1).reshape(T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    write_logits(x @ head.T, out_file)


def write_logits(logits, out_file):
    with open(out_file, "wb") as f:
        f.write(logits.to(torch.float32).contiguous().numpy().tobytes())


if __name__ == "__main__":
    main()
