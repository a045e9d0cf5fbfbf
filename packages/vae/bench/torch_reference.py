"""
Optional reference figures and cross-check for @opensora/vae, using PyTorch (no diffusers needed).
Not used by the test suite or CI. Run with Debian's python3 (python3-torch, python3-numpy):

  /usr/bin/python3 packages/vae/bench/torch_reference.py time [tiny] [sd]   # encode/decode frames/s, 256x256
  /usr/bin/python3 packages/vae/bench/torch_reference.py check DIR     # compare against DIR/{config.json,weights,io}.safetensors

The module tree mirrors diffusers' AutoencoderKL (DownEncoderBlock2D / UpDecoderBlock2D / UNetMidBlock2D
with one attention), so its state_dict keys are diffusers' keys and load_state_dict(strict=True)
checks them.
"""
import json, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

class Resnet(nn.Module):
    def __init__(s, cin, cout, g):
        super().__init__()
        s.norm1 = nn.GroupNorm(g, cin, eps=1e-6); s.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        s.norm2 = nn.GroupNorm(g, cout, eps=1e-6); s.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        s.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
    def forward(s, x):
        h = s.conv2(F.silu(s.norm2(s.conv1(F.silu(s.norm1(x))))))
        return (s.conv_shortcut(x) if s.conv_shortcut is not None else x) + h

class Attn(nn.Module):
    def __init__(s, c, g):
        super().__init__()
        s.group_norm = nn.GroupNorm(g, c, eps=1e-6)
        s.to_q = nn.Linear(c, c); s.to_k = nn.Linear(c, c); s.to_v = nn.Linear(c, c)
        s.to_out = nn.ModuleList([nn.Linear(c, c)])
    def forward(s, x):
        b, c, h, w = x.shape
        n = s.group_norm(x).view(b, c, h * w).transpose(1, 2)
        q, k, v = s.to_q(n), s.to_k(n), s.to_v(n)
        a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1)
        return s.to_out[0](a @ v).transpose(1, 2).reshape(b, c, h, w) + x

class Down(nn.Module):
    def __init__(s, c):
        super().__init__(); s.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)
    def forward(s, x):
        return s.conv(F.pad(x, (0, 1, 0, 1)))

class Up(nn.Module):
    def __init__(s, c):
        super().__init__(); s.conv = nn.Conv2d(c, c, 3, padding=1)
    def forward(s, x):
        return s.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

class Block(nn.Module):
    def __init__(s, resnets, sampler=None, kind=None):
        super().__init__()
        s.resnets = nn.ModuleList(resnets)
        if kind == "down": s.downsamplers = nn.ModuleList([sampler] if sampler else [])
        if kind == "up": s.upsamplers = nn.ModuleList([sampler] if sampler else [])
    def forward(s, x):
        for r in s.resnets: x = r(x)
        for m in getattr(s, "downsamplers", []) or getattr(s, "upsamplers", []): x = m(x)
        return x

class Mid(nn.Module):
    def __init__(s, c, g):
        super().__init__()
        s.resnets = nn.ModuleList([Resnet(c, c, g), Resnet(c, c, g)]); s.attentions = nn.ModuleList([Attn(c, g)])
    def forward(s, x):
        return s.resnets[1](s.attentions[0](s.resnets[0](x)))

class Encoder(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        ch, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], len(cfg["block_out_channels"])
        s.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        blocks, prev = [], ch[0]
        for i, c in enumerate(ch):
            rs = [Resnet(prev if j == 0 else c, c, g) for j in range(cfg["layers_per_block"])]
            blocks.append(Block(rs, Down(c) if i < n - 1 else None, "down")); prev = c
        s.down_blocks = nn.ModuleList(blocks)
        s.mid_block = Mid(ch[-1], g)
        s.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        s.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)
    def forward(s, x):
        x = s.conv_in(x)
        for b in s.down_blocks: x = b(x)
        return s.conv_out(F.silu(s.conv_norm_out(s.mid_block(x))))

class Decoder(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        ch, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], len(cfg["block_out_channels"])
        rev = list(reversed(ch))
        s.conv_in = nn.Conv2d(cfg["latent_channels"], ch[-1], 3, padding=1)
        s.mid_block = Mid(ch[-1], g)
        blocks, prev = [], rev[0]
        for i, c in enumerate(rev):
            rs = [Resnet(prev if j == 0 else c, c, g) for j in range(cfg["layers_per_block"] + 1)]
            blocks.append(Block(rs, Up(c) if i < n - 1 else None, "up")); prev = c
        s.up_blocks = nn.ModuleList(blocks)
        s.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-6)
        s.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)
    def forward(s, z):
        x = s.mid_block(s.conv_in(z))
        for b in s.up_blocks: x = b(x)
        return s.conv_out(F.silu(s.conv_norm_out(x)))

class AutoencoderKL(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        L = cfg["latent_channels"]
        s.encoder = Encoder(cfg); s.decoder = Decoder(cfg)
        s.quant_conv = nn.Conv2d(2 * L, 2 * L, 1); s.post_quant_conv = nn.Conv2d(L, L, 1)
    def encode(s, x):
        mean, logvar = torch.chunk(s.quant_conv(s.encoder(x)), 2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)
    def decode(s, z):
        return s.decoder(s.post_quant_conv(z))

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n)); data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]; assert v["dtype"] == "F32"
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy().reshape(v["shape"]))
    return out

SD = dict(in_channels=3, out_channels=3, block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4, norm_num_groups=32)
TINY = dict(SD, block_out_channels=[8, 16, 32, 32], layers_per_block=1, norm_num_groups=4)

def timeit(fn, min_s=1.5):
    fn(); n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < min_s:
        fn(); n += 1
    return (time.perf_counter() - t0) / n

if __name__ == "__main__":
    if sys.argv[1] == "time":
        # time [tiny] [sd]: one JSON line per config on stdout.
        which = sys.argv[2:] or ["tiny"]
        for key, name, cfg, frames in [("tiny", "tiny AutoencoderKL", TINY, 4), ("sd", "sd-vae-ft-ema config", SD, 1)]:
            if key not in which: continue
            m = AutoencoderKL(cfg).eval()
            x = torch.rand(frames, 3, 256, 256) * 2 - 1
            with torch.no_grad():
                mean, logvar = m.encode(x)
                te = timeit(lambda: m.encode(x))
                td = timeit(lambda: m.decode(mean))
            print(json.dumps(dict(config=key, params=sum(p.numel() for p in m.parameters()), frames=frames,
                                  encode_fps=frames / te, decode_fps=frames / td, threads=torch.get_num_threads(),
                                  torch=torch.__version__)), flush=True)
    else:
        d = sys.argv[2]
        cfg = json.load(open(f"{d}/config.json"))
        m = AutoencoderKL(cfg).eval()
        m.load_state_dict(read_safetensors(f"{d}/diffusion_pytorch_model.safetensors"), strict=True)
        io = read_safetensors(f"{d}/io.safetensors")
        with torch.no_grad():
            mean, logvar = m.encode(io["x"])
            dec = m.decode(io["z"])
        for k, v in [("mean", mean), ("logvar", logvar), ("decoded", dec)]:
            ref = io[k]
            print(f"{k}: shape {tuple(v.shape)} max abs diff {(v - ref).abs().max().item():.3e} (max |value| {v.abs().max().item():.3f})")
