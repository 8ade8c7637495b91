#!/usr/bin/env python3
"""compare-plot.py REPORT.json OUT.svg [TITLE]: draw `vessel compare --format json`
as an SVG: one panel per cost metric, a bar per mode at its median with a
min-max whisker. Standard library only; each panel has its own scale."""
import json
import sys
from html import escape

METRICS = [
    ("first_output_ms", "create -> first output", "ms", "lower is better"),
    ("exit_ms", "create -> exit", "ms", "lower is better"),
    ("peak_memory_mib", "peak memory (cgroup)", "MiB", "lower is better"),
    ("getpid_ns", "getpid() syscall", "ns", "lower is better"),
    ("read_ns", "read(1 byte) syscall", "ns", "lower is better"),
    ("file_write_mib_s", "file write + fsync", "MiB/s", "higher is better"),
    ("file_read_mib_s", "file read back", "MiB/s", "higher is better"),
    ("cpu_ms", "CPU-bound loop", "ms", "lower is better"),
]
MODES = [("container", "#2b7bb9"), ("vm", "#d9822b")]
W, PANEL_H, LEFT, RIGHT, TOP = 760, 74, 170, 150, 54


def fmt(x):
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}"


def main():
    report = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "vessel compare"
    modes = report["modes"]
    h = TOP + PANEL_H * len(METRICS) + 40
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{h}" fill="white"/>',
         f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
         f'<text x="10" y="38" fill="#555">median of {report["runs"]} run(s) per mode, '
         f'whisker = min-max; each panel has its own scale</text>']
    x = LEFT
    for i, (name, color) in enumerate(MODES):
        lx = W - 230 + i * 110
        s.append(f'<rect x="{lx}" y="10" width="12" height="12" fill="{color}"/>'
                 f'<text x="{lx + 16}" y="20">{name}</text>')
    plot_w = W - LEFT - RIGHT
    for p, (key, label, unit, better) in enumerate(METRICS):
        y0 = TOP + p * PANEL_H
        s.append(f'<text x="10" y="{y0 + 24}" font-weight="bold">{escape(label)}</text>')
        s.append(f'<text x="10" y="{y0 + 40}" fill="#777">{unit}, {better}</text>')
        vals = []
        for m, _ in MODES:
            c = (modes.get(m, {}).get("cost") or {}).get(key)
            vals.append(c)
        top = max([c["max"] for c in vals if c] or [1.0]) or 1.0
        for j, ((m, color), c) in enumerate(zip(MODES, vals)):
            by = y0 + 10 + j * 26
            if not c:
                why = modes.get(m, {}).get("status", "not run")
                s.append(f'<text x="{x}" y="{by + 15}" fill="#999">{m}: {escape(why)}</text>')
                continue
            bw = plot_w * c["median"] / top
            s.append(f'<rect x="{x}" y="{by}" width="{bw:.1f}" height="20" fill="{color}"/>')
            x1, x2 = x + plot_w * c["min"] / top, x + plot_w * c["max"] / top
            s.append(f'<line x1="{x1:.1f}" y1="{by + 10}" x2="{x2:.1f}" y2="{by + 10}" stroke="black"/>'
                     f'<line x1="{x1:.1f}" y1="{by + 5}" x2="{x1:.1f}" y2="{by + 15}" stroke="black"/>'
                     f'<line x1="{x2:.1f}" y1="{by + 5}" x2="{x2:.1f}" y2="{by + 15}" stroke="black"/>')
            s.append(f'<text x="{x + plot_w + 8}" y="{by + 15}">{fmt(c["median"])} '
                     f'({fmt(c["min"])}-{fmt(c["max"])})</text>')
        s.append(f'<line x1="10" y1="{y0 + PANEL_H - 2}" x2="{W - 10}" y2="{y0 + PANEL_H - 2}" stroke="#ddd"/>')
    h_note = TOP + PANEL_H * len(METRICS) + 20
    host = report.get("host", {})
    s.append(f'<text x="10" y="{h_note}" fill="#555">host: {escape(str(host.get("kernel_release")))}, '
             f'{escape(str(host.get("cpu_model")))}, {host.get("cpus")} CPU(s); '
             f'io {report["params"]["io_mib"]} MiB, cpu {report["params"]["cpu_iters"]} iters, '
             f'{report["params"]["syscalls"]} syscalls</text>')
    s.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(s) + "\n")


if __name__ == "__main__":
    main()
