"""An independent timing of the cnn on CPU: a bare PyTorch loop, no neurontui, no workloads package.

Run as a script by bench_harness.py to check that the harness costs next to nothing. It does
what the workload child does to the model (trace under no_grad, run under inference_mode on
every visible CPU's thread) and nothing else: warm up, then time each call with perf_counter.
Usage: bare_loop.py SECONDS WARMUP [THREADS]. Prints {"p50": seconds, "calls": n, "throughput": calls per second} on stdout.
"""
import json
import os
import statistics
import sys
import time

import torch
from torch import nn


class MnistCNN(nn.Module):  # the seed's model, written out again on purpose (see the docstring)
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(64 * 7 * 7, 1000)
        self.fc2 = nn.Linear(1000, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(self.dropout(x), 1)
        return self.fc2(torch.relu(self.fc1(x)))


def main(seconds: float, warmup: float, threads: int) -> None:
    torch.set_num_threads(threads)  # as the child does: --cores N, else every visible CPU
    x = torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        model = torch.jit.trace(MnistCNN().eval(), (x,), check_trace=False)
    samples = []
    with torch.inference_mode():
        end = time.perf_counter() + warmup
        while time.perf_counter() < end:
            model(x)
        began = time.perf_counter()
        end = began + seconds
        while True:
            start = time.perf_counter()
            model(x)
            done = time.perf_counter()
            samples.append(done - start)
            if done >= end:
                break
    print(json.dumps({"p50": statistics.median(samples), "calls": len(samples),
                      "throughput": len(samples) / (done - began)}))


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]),
         int(sys.argv[3]) if len(sys.argv) > 3 else len(os.sched_getaffinity(0)))
