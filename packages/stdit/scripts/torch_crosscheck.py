# One-off cross-check: STDiT2 forward written after the upstream v1.1.0 code structure, in torch.
import json, math, struct, sys
import numpy as np
import torch
import torch.nn.functional as F

def load_st(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        h = json.loads(f.read(n)); base = 8 + n
        f.seek(0); buf = f.read()
    out = {}
    meta = h.pop('__metadata__', {})
    for k, v in h.items():
        a, b = v['data_offsets']
        dt = {'F32': np.float32, 'I64': np.int64, 'BOOL': np.bool_, 'I32': np.int32}[v['dtype']]
        out[k] = torch.from_numpy(np.frombuffer(buf[base + a: base + b], dtype=dt).reshape(v['shape']).copy())
    return out, meta

def save_st(path, tensors):
    hdr = {}; off = 0; blobs = []
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        dt = {torch.float32: 'F32', torch.int64: 'I64', torch.bool: 'BOOL'}[t.dtype]
        b = t.numpy().tobytes(); hdr[k] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b); blobs.append(b)
    hj = json.dumps(hdr).encode(); hj += b' ' * ((8 - len(hj) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hj))); f.write(hj)
        for b in blobs: f.write(b)

W, meta = load_st(sys.argv[1])
cfg = json.loads(meta['config'])
D = cfg['hidden_size']; nh = cfg['num_heads']; hd = D // nh; depth = cfg['depth']
P = (1, 2, 2)

def lin(x, name): return F.linear(x, W[name + '.weight'], W[name + '.bias'])
def ln(x): return F.layer_norm(x, (x.shape[-1],), eps=1e-6)
def t2i_modulate(x, shift, scale): return x * (1 + scale) + shift
def gelu(x): return F.gelu(x, approximate='tanh')

def timestep_embedding(t, dim=256, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

def temb(t, prefix):
    h = lin(timestep_embedding(t), prefix + '.mlp.0'); h = F.silu(h); return lin(h, prefix + '.mlp.2')

def size_emb(s, bs, prefix):
    if s.ndim == 1: s = s[:, None]
    if s.shape[0] != bs: s = s.repeat(bs // s.shape[0], 1)
    b, dims = s.shape
    s = s.reshape(-1)
    e = temb(s, prefix)
    return e.reshape(b, dims * e.shape[-1])

def pos_embed(h, w, scale, base_size):
    half_dim = D // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, half_dim, 2).float() / half_dim))
    grid_h = torch.arange(h) / scale
    grid_w = torch.arange(w) / scale
    grid_h *= base_size / h
    grid_w *= base_size / w
    grid_h, grid_w = torch.meshgrid(grid_w, grid_h, indexing='ij')
    grid_h = grid_h.t().reshape(-1); grid_w = grid_w.t().reshape(-1)
    def sc(t):
        out = torch.einsum('i,d->id', t, inv_freq); return torch.cat((torch.sin(out), torch.cos(out)), dim=-1)
    return torch.concat([sc(grid_h), sc(grid_w)], dim=-1).unsqueeze(0)

def rotate_half(x):
    x = x.reshape(*x.shape[:-1], -1, 2); x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).reshape(*x.shape[:-2], -1)

def rope(t):
    freqs = W['rope.freqs']; T = t.shape[-2]
    seq = torch.arange(T, dtype=t.dtype)
    f = torch.einsum('..., f -> ... f', seq, freqs)
    f = f.repeat_interleave(2, dim=-1)
    return t * f.cos() + rotate_half(t) * f.sin()

def rms(x, w):
    v = x.pow(2).mean(-1, keepdim=True); return w * (x * torch.rsqrt(v + 1e-6))

def attention(x, prefix, use_rope):
    B, N, C = x.shape
    qkv = lin(x, prefix + '.qkv').view(B, N, 3, nh, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    if use_rope: q = rope(q); k = rope(k)
    if prefix + '.q_norm.weight' in W: q = rms(q, W[prefix + '.q_norm.weight']); k = rms(k, W[prefix + '.k_norm.weight'])
    q = q * hd ** -0.5
    a = (q @ k.transpose(-2, -1)).softmax(-1)
    o = (a @ v).transpose(1, 2).reshape(B, N, C)
    return lin(o, prefix + '.proj')

def cross(x, cond, lens, prefix):
    B, N, C = x.shape
    q = lin(x, prefix + '.q_linear').view(1, -1, nh, hd)
    kv = lin(cond, prefix + '.kv_linear').view(1, -1, 2, nh, hd)
    k, v = kv.unbind(2)
    Lk = k.shape[1]
    bias = torch.full((B * N, Lk), float('-inf'))
    s = 0
    for b, L in enumerate(lens):
        bias[b * N:(b + 1) * N, s:s + L] = 0; s += L
    q = q.permute(0, 2, 1, 3); k = k.permute(0, 2, 1, 3); v = v.permute(0, 2, 1, 3)
    a = (q * hd ** -0.5) @ k.transpose(-2, -1) + bias
    o = a.softmax(-1) @ v
    o = o.permute(0, 2, 1, 3).reshape(B, N, C)
    return lin(o, prefix + '.proj')

def sel(x_mask, x, mx, T, S):
    B = x.shape[0]
    x = x.view(B, T, S, -1); mx = mx.view(B, T, S, -1)
    return torch.where(x_mask[:, :, None, None], x, mx).view(B, T * S, -1)

def block(i, x, y, t, t_tmp, lens, x_mask, t0, t0_tmp, T, S):
    p = f'blocks.{i}'
    B, N, C = x.shape
    sst = W[p + '.scale_shift_table']; sstt = W[p + '.scale_shift_table_temporal']
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (sst[None] + t.reshape(B, 6, -1)).chunk(6, dim=1)
    shift_tmp, scale_tmp, gate_tmp = (sstt[None] + t_tmp.reshape(B, 3, -1)).chunk(3, dim=1)
    if x_mask is not None:
        shift_msa_zero, scale_msa_zero, gate_msa_zero, shift_mlp_zero, scale_mlp_zero, gate_mlp_zero = (sst[None] + t0.reshape(B, 6, -1)).chunk(6, dim=1)
        shift_tmp_zero, scale_tmp_zero, gate_tmp_zero = (sstt[None] + t0_tmp.reshape(B, 3, -1)).chunk(3, dim=1)
    x_m = t2i_modulate(ln(x), shift_msa, scale_msa)
    if x_mask is not None: x_m = sel(x_mask, x_m, t2i_modulate(ln(x), shift_msa_zero, scale_msa_zero), T, S)
    x_s = x_m.view(B, T, S, C).reshape(B * T, S, C)
    x_s = attention(x_s, p + '.attn', False).view(B, T * S, C)
    if x_mask is not None: x_s = sel(x_mask, gate_msa * x_s, gate_msa_zero * x_s, T, S)
    else: x_s = gate_msa * x_s
    x = x + x_s
    x_m = t2i_modulate(ln(x), shift_tmp, scale_tmp)
    if x_mask is not None: x_m = sel(x_mask, x_m, t2i_modulate(ln(x), shift_tmp_zero, scale_tmp_zero), T, S)
    x_t = x_m.view(B, T, S, C).permute(0, 2, 1, 3).reshape(B * S, T, C)
    x_t = attention(x_t, p + '.attn_temp', True).view(B, S, T, C).permute(0, 2, 1, 3).reshape(B, T * S, C)
    if x_mask is not None: x_t = sel(x_mask, gate_tmp * x_t, gate_tmp_zero * x_t, T, S)
    else: x_t = gate_tmp * x_t
    x = x + x_t
    x = x + cross(x, y, lens, p + '.cross_attn')
    x_m = t2i_modulate(ln(x), shift_mlp, scale_mlp)
    if x_mask is not None: x_m = sel(x_mask, x_m, t2i_modulate(ln(x), shift_mlp_zero, scale_mlp_zero), T, S)
    x_mlp = lin(gelu(lin(x_m, p + '.mlp.fc1')), p + '.mlp.fc2')
    if x_mask is not None: x_mlp = sel(x_mask, gate_mlp * x_mlp, gate_mlp_zero * x_mlp, T, S)
    else: x_mlp = gate_mlp * x_mlp
    return x + x_mlp

def forward(x, timestep, y, mask, x_mask, num_frames, height, width, ar, fps):
    B = x.shape[0]
    hw = torch.cat([height[:, None], width[:, None]], dim=1)
    rs = (height[0].item() * width[0].item()) ** 0.5
    csize = size_emb(hw, B, 'csize_embedder')
    are = size_emb(ar.unsqueeze(1), B, 'ar_embedder')
    data_info = torch.cat([csize, are], dim=1)
    fl = size_emb(num_frames.unsqueeze(1), B, 'fl_embedder') + size_emb(fps.unsqueeze(1), B, 'fps_embedder')
    _, _, Tx, Hx, Wx = x.shape
    T = math.ceil(Tx / P[0]); H = math.ceil(Hx / P[1]); Wd = math.ceil(Wx / P[2]); S = H * Wd
    scale = rs / cfg['input_sq_size']; base_size = round(S ** 0.5)
    pe = pos_embed(H, Wd, scale, base_size)
    xp = F.pad(x, (0, Wd * P[2] - Wx, 0, H * P[1] - Hx, 0, T * P[0] - Tx))
    xe = F.conv3d(xp, W['x_embedder.proj.weight'], W['x_embedder.proj.bias'], stride=P).flatten(2).transpose(1, 2)
    xe = (xe.view(B, T, S, D) + pe).view(B, T * S, D)
    t = temb(timestep, 't_embedder')
    t_spc = t + data_info; t_tmp = t + fl
    t_spc_mlp = lin(F.silu(t_spc), 't_block.1'); t_tmp_mlp = lin(F.silu(t_tmp), 't_block_temp.1')
    t0_spc = t0_spc_mlp = t0_tmp_mlp = None
    if x_mask is not None:
        t0 = temb(torch.zeros_like(timestep), 't_embedder')
        t0_spc = t0 + data_info; t0_tmp = t0 + fl
        t0_spc_mlp = lin(F.silu(t0_spc), 't_block.1'); t0_tmp_mlp = lin(F.silu(t0_tmp), 't_block_temp.1')
    yy = lin(gelu(lin(y, 'y_embedder.y_proj.fc1')), 'y_embedder.y_proj.fc2')
    if mask is not None:
        if mask.shape[0] != yy.shape[0]: mask = mask.repeat(yy.shape[0] // mask.shape[0], 1)
        yy = yy.squeeze(1).masked_select(mask.unsqueeze(-1) != 0).view(1, -1, D)
        lens = mask.sum(dim=1).tolist()
    else:
        lens = [yy.shape[2]] * yy.shape[0]; yy = yy.squeeze(1).view(1, -1, D)
    h = xe
    for i in range(depth): h = block(i, h, yy, t_spc_mlp, t_tmp_mlp, lens, x_mask, t0_spc_mlp, t0_tmp_mlp, T, S)
    sst = W['final_layer.scale_shift_table']
    shift, sc = (sst[None] + t[:, None]).chunk(2, dim=1)
    h2 = t2i_modulate(ln(h), shift, sc)
    if x_mask is not None:
        s0, c0 = (sst[None] + t0_spc[:, None]).chunk(2, dim=1)
        h2 = sel(x_mask, h2, t2i_modulate(ln(h2), s0, c0), T, S)
    o = lin(h2, 'final_layer.linear')
    Co = o.shape[-1] // (P[0] * P[1] * P[2])
    o = o.view(B, T, H, Wd, P[0], P[1], P[2], Co).permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, Co, T * P[0], H * P[1], Wd * P[2])
    return o[:, :, :Tx, :Hx, :Wx]

if __name__ == '__main__':
    cases, _ = load_st(sys.argv[2])
    with torch.no_grad():
        for c in ['case1', 'case3']:
            g = lambda n: cases[f'{c}_{n}']
            out = forward(g('x'), g('timestep'), g('y'), g('mask'), None, g('num_frames'), g('height'), g('width'), g('ar'), g('fps'))
            print(c, 'max abs vs fixture', (out - g('out')).abs().max().item())
        # extra cases (x_mask / single frame / odd sizes), same conventions as the fixtures
        torch.manual_seed(7)
        Cc = cfg['caption_channels']; L = cfg['model_max_length']
        extra = {}
        def mk(name, B, T, Hx, Wx, ts, lens, xm, hpx, wpx, fpsv):
            x = torch.randn(B, 4, T, Hx, Wx); y = torch.randn(B, 1, L, Cc)
            mask = torch.zeros(B, L, dtype=torch.int64)
            for b, n in enumerate(lens): mask[b, :n] = 1
            ts = torch.tensor(ts, dtype=torch.float32)
            nf = torch.full((B,), float(T)); h = torch.full((B,), float(hpx)); w = torch.full((B,), float(wpx))
            ar = torch.full((B,), hpx / wpx); fps = torch.full((B,), float(fpsv))
            xmask = None if xm is None else torch.tensor(xm, dtype=torch.bool)
            out = forward(x, ts, y, mask, xmask, nf, h, w, ar, fps)
            d = dict(x=x, timestep=ts, y=y, mask=mask, num_frames=nf, height=h, width=w, ar=ar, fps=fps, out=out)
            if xmask is not None: d['x_mask'] = xmask
            for k, v in d.items(): extra[f'{name}_{k}'] = v
        mk('xmask', 2, 4, 8, 8, [10.0, 500.0], [5, 16], [[True, False, True, True], [False, False, True, False]], 64, 64, 24)
        mk('single', 1, 1, 8, 12, [250.0], [9], None, 64, 96, 120)
        mk('odd', 2, 2, 7, 9, [999.0, 3.0], [16, 1], None, 56, 72, 8)
        mk('oddmask', 2, 3, 5, 7, [700.0, 100.0], [3, 12], [[False, True, True], [True, True, False]], 40, 56, 24)
        save_st(sys.argv[3], extra)
        print('wrote', len(extra), 'tensors')
