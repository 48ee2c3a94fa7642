"""PyTorch (CPU) side of bench/torch_speed.sh: discus-model's default grader and localiser
(crates/discus-model/src/net.rs, Architecture::default()) rebuilt layer for layer, trained and run
exactly as crates/discus-model/examples/speed.rs does. Prints the same JSON lines.

Usage: torch_speed.py ROUNDS   (threads: torch.set_num_threads(2) unless TORCH_THREADS is set)
"""

import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

GRADER_BATCH = 32
LOCALISER_BATCH = 8
WARMUP = 2
SLICES = 3  # Architecture::default(): localiser_slices = grader_slices = 3
WIDTH = 16  # localiser_width = grader_width = 16
GRID = 64  # Preprocessing::default().localiser_grid
CROP = 32  # Preprocessing::default().crop.rows/columns


def conv(i, o):
    # burn: Conv2dConfig::new([i, o], [3, 3]).with_padding(Same), bias on.
    return nn.Conv2d(i, o, 3, padding=1, bias=True)


def groups(c):
    # net.rs `groups`: about 8 channels per group, a divisor of c.
    return next((g for g in range(c // 8, 0, -1) if c % g == 0), 1)


class Grader(nn.Module):
    # Architecture::default(): grader_convs = 2, grader_norm = true.
    def __init__(self):
        super().__init__()
        w = WIDTH
        self.c1, self.c2, self.c3 = conv(SLICES, w), conv(w, 2 * w), conv(2 * w, 4 * w)
        self.c1b, self.c2b, self.c3b = conv(w, w), conv(2 * w, 2 * w), conv(4 * w, 4 * w)
        gn = lambda c: nn.GroupNorm(groups(c), c, eps=1e-5)
        self.n1, self.n2, self.n3 = gn(w), gn(2 * w), gn(4 * w)
        self.n1b, self.n2b, self.n3b = gn(w), gn(2 * w), gn(4 * w)
        self.fc = nn.Linear(4 * w, 3)

    def forward(self, x):
        for c, n, cb, nb in ((self.c1, self.n1, self.c1b, self.n1b),
                             (self.c2, self.n2, self.c2b, self.n2b),
                             (self.c3, self.n3, self.c3b, self.n3b)):
            x = F.relu(n(c(x)))
            x = F.relu(nb(cb(x)))
            x = F.max_pool2d(x, 2, 2)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class Localiser(nn.Module):
    def __init__(self):
        super().__init__()
        w = WIDTH
        self.e1a, self.e1b = conv(SLICES, w), conv(w, w)
        self.e2a, self.e2b = conv(w, 2 * w), conv(2 * w, 2 * w)
        self.e3a, self.e3b = conv(2 * w, 2 * w), conv(2 * w, 2 * w)
        self.e4a, self.e4b = conv(2 * w, 4 * w), conv(4 * w, 4 * w)
        self.d3 = conv(6 * w, 2 * w)
        self.d2, self.d1 = conv(4 * w, 2 * w), conv(3 * w, w)
        self.head = nn.Conv2d(w, 5, 1)

    def forward(self, x):
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")
        pool = lambda t: F.max_pool2d(t, 2, 2)
        e1 = F.relu(self.e1b(F.relu(self.e1a(x))))
        e2 = F.relu(self.e2b(F.relu(self.e2a(pool(e1)))))
        e3 = F.relu(self.e3b(F.relu(self.e3a(pool(e2)))))
        e4 = F.relu(self.e4b(F.relu(self.e4a(pool(e3)))))
        d3 = F.relu(self.d3(torch.cat([up(e4), e3], 1)))
        d2 = F.relu(self.d2(torch.cat([up(d3), e2], 1)))
        d1 = F.relu(self.d1(torch.cat([up(d2), e1], 1)))
        return self.head(d1)


def report(net, mode, batch, ips):
    print(json.dumps({"net": net, "mode": mode, "replicas": 1, "batch": batch,
                      "images_per_second": round(ips, 2)}), flush=True)


def timed(steps, per_step, step):
    for _ in range(WARMUP):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * per_step / (time.perf_counter() - t)


def grader_train(steps):
    torch.manual_seed(1)
    net = Grader()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(GRADER_BATCH, SLICES, CROP, CROP) * 2 - 1
    y = torch.arange(GRADER_BATCH) % 3

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return timed(steps, GRADER_BATCH, step)


def localiser_train(steps):
    torch.manual_seed(2)
    net = Localiser()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    b = LOCALISER_BATCH
    x = torch.rand(b, SLICES, GRID, GRID) * 2 - 1
    t = torch.softmax((torch.rand(b * 5, GRID * GRID) * 2 - 1) * 4, 1)

    def step():
        opt.zero_grad()
        logits = net(x).reshape(b * 5, GRID * GRID)
        loss = -(t * F.log_softmax(logits, 1)).sum() / (b * 5)
        loss.backward()
        opt.step()

    return timed(steps, b, step)


def infer(steps):
    torch.manual_seed(3)
    g, l = Grader().eval(), Localiser().eval()
    xg = torch.rand(GRADER_BATCH, SLICES, CROP, CROP) * 2 - 1
    xl = torch.rand(LOCALISER_BATCH, SLICES, GRID, GRID) * 2 - 1
    with torch.inference_mode():
        gi = timed(steps * 4, GRADER_BATCH, lambda: g(xg).numpy())
        li = timed(steps, LOCALISER_BATCH, lambda: l(xl).numpy())
    return gi, li


def main():
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for _ in range(rounds):
        report("grader", "train", GRADER_BATCH, grader_train(10))
        report("localiser", "train", LOCALISER_BATCH, localiser_train(6))
        gi, li = infer(10)
        report("grader", "infer", GRADER_BATCH, gi)
        report("localiser", "infer", LOCALISER_BATCH, li)


if __name__ == "__main__":
    main()
