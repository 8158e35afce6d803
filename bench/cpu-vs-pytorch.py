#!/usr/bin/env python3
"""Times training steps of the RevCol release's own PyTorch model on the CPU.

Driver for bench/cpu-vs-pytorch.ts (revcol vs PyTorch on the same "nano" network). The
release's model code is imported at run time from --release (a checkout of
megvii-research/RevCol); nothing of it lives in this repository.

One step = zero the gradients, forward, loss, backward, AdamW step; --warmup untimed steps,
then --steps timed ones. Prints one JSON object on stdout (the last line), or
{"error": "..."} with exit status 0 when torch or the release cannot be loaded, so that the
caller can say so in one line.

  python3 bench/cpu-vs-pytorch.py --release /work/revcol-release --threads 1 --mode reversible
"""
import argparse
import json
import math
import os
import sys
import time
import types


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--release', required=True, help='checkout of megvii-research/RevCol (holds models/revcol.py)')
    p.add_argument('--threads', type=int, default=1, help='torch.set_num_threads')
    p.add_argument('--mode', choices=['reversible', 'plain'], default='reversible',
                   help="reversible: the release's save_memory=True (ReverseFunction); plain: ordinary autograd")
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--steps', type=int, default=5, help='timed steps')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    p.add_argument('--size', type=int, default=32, help='square input size')
    p.add_argument('--classes', type=int, default=10)
    p.add_argument('--channels', default='32,64,96,128')
    p.add_argument('--layers', default='1,1,2,1')
    p.add_argument('--columns', type=int, default=4)
    p.add_argument('--kernel', type=int, default=3)
    p.add_argument('--inter-supv', action='store_true',
                   help='four heads and three reconstruction decoders, with the compound loss')
    p.add_argument('--check', action='store_true', help='only load torch and the release, print versions')
    return p.parse_args()


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def median(xs):
    """The upper middle value (as the node side takes it)."""
    return sorted(xs)[len(xs) // 2]


def ints(text):
    return [int(x) for x in text.split(',') if x.strip()]


def provide_timm_layers(torch):
    """The release imports DropPath and trunc_normal_ from timm; where timm is not installed
    (Debian has no package of it), stand in with small equivalents written here. With drop
    path 0 (this bench) DropPath is never built: the release uses nn.Identity then."""
    try:
        import timm.models.layers  # noqa: F401
        return 'timm'
    except Exception:
        pass

    class DropPath(torch.nn.Module):
        def __init__(self, p=0.0):
            super().__init__()
            self.p = p

        def forward(self, x):
            if self.p == 0.0 or not self.training:
                return x
            keep = 1.0 - self.p
            mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
            return x * mask / keep

    def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return torch.nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)

    timm = types.ModuleType('timm')
    models = types.ModuleType('timm.models')
    layers = types.ModuleType('timm.models.layers')
    layers.DropPath = DropPath
    layers.trunc_normal_ = trunc_normal_
    timm.models = models
    models.layers = layers
    sys.modules.update({'timm': timm, 'timm.models': models, 'timm.models.layers': layers})
    return 'stand-in (timm not installed)'


def loaded_blas(torch):
    """The BLAS libraries torch has loaded (Linux: from /proc/self/maps), after one product.

    Debian's torch takes whatever libblas.so.3 the alternatives system points at: with the
    reference BLAS its step measured 8× slower than with OpenBLAS on the same machine, so the
    comparison must say which one ran."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    try:
        with open('/proc/self/maps') as maps:
            paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    except OSError:
        return 'unknown'
    found = sorted(p for p in paths if any(k in os.path.basename(p).lower() or k in p.lower() for k in ('blas', 'mkl', 'lapack')))
    return ', '.join(found) or 'none found'


def main():
    args = parse_args()
    try:
        import torch
    except Exception as err:  # noqa: BLE001
        emit({'error': f'torch is not installed for {sys.executable} ({type(err).__name__}: {err})'})
        return
    if not os.path.isfile(os.path.join(args.release, 'models', 'revcol.py')):
        emit({'error': f'{args.release} has no models/revcol.py: give a checkout of megvii-research/RevCol'})
        return
    timm_source = provide_timm_layers(torch)
    sys.path.insert(0, os.path.abspath(args.release))
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # models/modules.py imports the deprecated `imp`
            from models.revcol import FullNet
    except Exception as err:  # noqa: BLE001
        emit({'error': f'cannot import the release from {args.release}: {type(err).__name__}: {err}'})
        return
    blas = loaded_blas(torch)
    if args.check:
        emit({'torch': torch.__version__, 'python': sys.version.split()[0], 'timm': timm_source, 'blas': blas})
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    channels = ints(args.channels)
    layers = ints(args.layers)
    # FullNet reverses its channel list in place when it builds decoders: hand it a copy.
    model = FullNet(list(channels), layers, args.columns, kernel_size=args.kernel, num_classes=args.classes,
                    drop_path=0.0, save_memory=args.mode == 'reversible', inter_supv=args.inter_supv)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())

    # AdamW as the release trains (lr 1e-3, weight decay 0.05), without decay on 1-D
    # parameters (norms, biases, layer scales) and the shortcut scales alpha*, as revcol's
    # AdamW leaves them out; the grouping is this bench's own.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() <= 1 or name.split('.')[-1].startswith('alpha') else decay).append(p)
    optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': no_decay, 'weight_decay': 0.0}], lr=1e-3)

    g = torch.Generator().manual_seed(3)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    labels = torch.arange(args.batch) % args.classes
    ce = torch.nn.CrossEntropyLoss()
    bce = torch.nn.BCEWithLogitsLoss()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    image = (x * std + mean).clamp(0.01, 0.99)  # the reconstruction target: the de-normalised input

    def loss_of(outputs):
        logits, recons = outputs
        if not args.inter_supv:
            return ce(logits[-1], labels)
        # REVCOL.md §5: 3·(1-k/3)·BCE(recon_k, image) + 0.7·((k+1)/4)·CE(head_k), plus CE of the last head.
        total = ce(logits[-1], labels)
        for k, recon in enumerate(recons):
            total = total + 3.0 * (1 - k / len(recons)) * bce(recon, image) + 0.7 * ((k + 1) / len(logits)) * ce(logits[k], labels)
        return total

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(model(x))
        loss.backward()
        optimizer.step()
        return loss.item()

    losses = []
    for _ in range(args.warmup):
        losses.append(step())
    times, cpu = [], []
    for _ in range(args.steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        losses.append(step())
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    median_ms = median(times)
    emit({
        'torch': torch.__version__,
        'python': sys.version.split()[0],
        'timm': timm_source,
        'blas': blas,
        'threads': torch.get_num_threads(),
        'mode': args.mode,
        'interSupervision': args.inter_supv,
        'batch': args.batch,
        'steps': args.steps,
        'warmup': args.warmup,
        'parameters': n_params,
        'stepMs': [round(t, 1) for t in times],
        'medianMs': round(median_ms, 1),
        # CPU time of the process (all its threads) per step: less disturbed by other jobs than wall time.
        'cpuMs': round(median(cpu), 1),
        'samplesPerSec': round(args.batch * 1000 / median_ms, 2),
        'lossFinite': all(math.isfinite(v) for v in losses),
    })


if __name__ == '__main__':
    main()
