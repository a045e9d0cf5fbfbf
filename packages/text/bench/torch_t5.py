"""
Reference figures for bench/index.ts, and a one-off numerical cross-check of the tfjs T5 encoder.

The T5 v1.1 encoder written directly in PyTorch from the transformers formulas (T5LayerNorm,
T5Attention without scaling and with the shared relative-position bias, gated gelu_new FFN).
Not needed by the project or CI. Run with Debian's python3-torch (1.13, CPU):

  /usr/bin/python3 bench/torch_t5.py time                 # prompts/s, batch 8, L 200, 2 threads (bench/index.ts runs it)
  /usr/bin/python3 bench/torch_t5.py check FILE.safetensors  # compare with a file from bench/write-check.ts
"""
import json, math, struct, sys, time
import numpy as np
import torch

torch.set_num_threads(2)


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {})
    dt = {'F32': np.float32, 'I32': np.int32}
    out = {}
    for k, v in header.items():
        a, b = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dt[v['dtype']]).reshape(v['shape']).copy())
    return out, meta


def bucket(rp, num_buckets=32, max_distance=128):
    nb = num_buckets // 2
    ret = (rp > 0).to(torch.long) * nb
    rp = torch.abs(rp)
    max_exact = nb // 2
    is_small = rp < max_exact
    large = max_exact + (torch.log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (nb - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, nb - 1))
    return ret + torch.where(is_small, rp, large)


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def t5_forward(cfg, w, ids, mask):
    B, L = ids.shape
    H, dk, eps = cfg['num_heads'], cfg['d_kv'], cfg['layer_norm_epsilon']
    h = w['shared.weight'][ids]
    pos = torch.arange(L)
    b = bucket(pos[None, :] - pos[:, None], cfg['relative_attention_num_buckets'], cfg['relative_attention_max_distance'])
    bias = w['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'][b].permute(2, 0, 1)[None]
    bias = bias + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in range(cfg['num_layers']):
        p = f'encoder.block.{i}.layer'
        n = rms(h, w[f'{p}.0.layer_norm.weight'], eps)
        sh = lambda t: t.view(B, L, H, dk).transpose(1, 2)
        q = sh(n @ w[f'{p}.0.SelfAttention.q.weight'].T)
        k = sh(n @ w[f'{p}.0.SelfAttention.k.weight'].T)
        v = sh(n @ w[f'{p}.0.SelfAttention.v.weight'].T)
        s = q @ k.transpose(-1, -2) + bias
        a = torch.softmax(s.float(), dim=-1)
        ctx = (a @ v).transpose(1, 2).reshape(B, L, H * dk)
        h = h + ctx @ w[f'{p}.0.SelfAttention.o.weight'].T
        n = rms(h, w[f'{p}.1.layer_norm.weight'], eps)
        f = gelu_new(n @ w[f'{p}.1.DenseReluDense.wi_0.weight'].T) * (n @ w[f'{p}.1.DenseReluDense.wi_1.weight'].T)
        h = h + f @ w[f'{p}.1.DenseReluDense.wo.weight'].T
    return rms(h, w['encoder.final_layer_norm.weight'], eps)


def random_weights(cfg):
    g = torch.Generator().manual_seed(0)
    D, H, dk, ff = cfg['d_model'], cfg['num_heads'], cfg['d_kv'], cfg['d_ff']
    r = lambda *s: torch.randn(*s, generator=g) * 0.05
    w = {'shared.weight': r(cfg['vocab_size'], D), 'encoder.final_layer_norm.weight': torch.ones(D),
         'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight': r(cfg['relative_attention_num_buckets'], H)}
    for i in range(cfg['num_layers']):
        p = f'encoder.block.{i}.layer'
        for n in 'qkv':
            w[f'{p}.0.SelfAttention.{n}.weight'] = r(H * dk, D)
        w[f'{p}.0.SelfAttention.o.weight'] = r(D, H * dk)
        w[f'{p}.1.DenseReluDense.wi_0.weight'] = r(ff, D)
        w[f'{p}.1.DenseReluDense.wi_1.weight'] = r(ff, D)
        w[f'{p}.1.DenseReluDense.wo.weight'] = r(D, ff)
        w[f'{p}.0.layer_norm.weight'] = torch.ones(D)
        w[f'{p}.1.layer_norm.weight'] = torch.ones(D)
    return w


def time_cfg(name, cfg, B=8, L=200, min_s=3.0):
    w = random_weights(cfg)
    ids = torch.randint(2, cfg['vocab_size'], (B, L))
    mask = torch.zeros(B, L, dtype=torch.long)
    for b in range(B):
        mask[b, : 30 + 3 * b] = 1
    with torch.no_grad():
        t5_forward(cfg, w, ids, mask)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_s or n < 2 * B:
            t5_forward(cfg, w, ids, mask)
            n += B
        dt = time.perf_counter() - t0
    print(f'RESULT {name} {n / dt:.3f}')


BASE = dict(vocab_size=32128, relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6)
if sys.argv[1] == 'time':
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
    time_cfg('tiny', dict(BASE, vocab_size=48, d_model=64, d_kv=16, d_ff=128, num_heads=4, num_layers=2))
    time_cfg('small', dict(BASE, d_model=512, d_kv=64, d_ff=1024, num_heads=6, num_layers=8))
elif sys.argv[1] == 'check':
    t, meta = read_safetensors(sys.argv[2])
    cfg = json.loads(meta['config'])
    ids, mask, out = t.pop('__ids'), t.pop('__mask'), t.pop('__out')
    with torch.no_grad():
        ref = t5_forward(cfg, t, ids.long(), mask.long())
    m = mask[:, :, None].bool()
    d = (ref - out).abs().masked_select(m)
    print(f'max abs diff on real tokens: {d.max().item():.3g} (output max abs {out.abs().max().item():.3g})')
