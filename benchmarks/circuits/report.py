"""The circuits benchmark's derived columns and printed table."""
from __future__ import annotations


def add_ratios(rows: list[dict]) -> None:
    """The ratio columns of each case row, in place (:mod:`benchmarks.circuits.run`)."""
    for row in rows:
        row["speedup_fb_vs_minors"] = row["minors_fb"] / row["ours_matrix_fb"]
        row["fwd_over_floor"] = row["ours_matrix_fwd"] / row["floor"]
        row["fwd_over_floor_prealloc"] = row["ours_matrix_fwd"] / row["floor_prealloc"]
        row["largest_possible_speedup"] = row["minors_fb"] / row["autograd_floor_fb"]
        if row.get("ours_kernel_fb"):
            row["speedup_fb_kernel_vs_minors"] = row["minors_fb"] / row["ours_kernel_fb"]


def print_tables(rows: list[dict], pl_rows: list[dict], threads: int) -> None:
    """The case rows and PennyLane's rows, times in ms."""
    ms = lambda s: f"{s * 1e3:9.3f}"  # noqa: E731
    print(f"threads={threads}")
    print(f"{'n':>3}{'k':>3}{'r':>3}{'C(n,k)':>8}{'floor':>10}{'ours fwd':>10}{'ours fb':>10}"
          f"{'angles fb':>10}{'minors fb':>11}{'fb speedup':>11}{'possible':>10}"
          f"{'fwd/floor':>10}{'fwd/prealloc':>13}{'kernel fb':>11}{'kernel x':>10}   (ms)")
    for row in rows:
        print(f"{row['n']:>3}{row['k']:>3}{row['r']:>3}{row['block']:>8}{ms(row['floor']):>10}"
              f"{ms(row['ours_matrix_fwd']):>10}{ms(row['ours_matrix_fb']):>10}"
              f"{ms(row['ours_angles_fb']):>10}{ms(row['minors_fb']):>11}"
              f"{row['speedup_fb_vs_minors']:>10.1f}x{row['largest_possible_speedup']:>9.1f}x"
              f"{row['fwd_over_floor']:>9.1f}x"
              f"{row['fwd_over_floor_prealloc']:>12.1f}x"
              + (f"{ms(row['ours_kernel_fb']):>11}{row['speedup_fb_kernel_vs_minors']:>9.1f}x"
                 if row.get("ours_kernel_fb") else ""))
    print("\nPennyLane (qml.matrix + block extraction, one block) vs ours from angles (fwd):")
    for row in pl_rows:
        print(f"  n={row['n']:>2} k={row['k']}: PennyLane {row['pennylane']:.3f} s, ours "
              f"{row['ours_angles_fwd'] * 1e3:.3f} ms, speedup {row['speedup']:.0f}x, "
              f"max |diff| {row['max_abs_diff']:.1e}")
