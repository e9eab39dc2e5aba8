"""Seed quantiles of loss curves: descentlab.analysis.quantiles against np.nanquantile (quoted in docs/dev/speed.md).

python benchmarks/quantiles.py
"""

import timeit

import numpy as np

from descentlab.analysis import quantiles

QS = [0.25, 0.5, 0.75]


def main() -> None:
    rng = np.random.default_rng(0)
    print("steps × seeds   np.nanquantile (inf stood in)   analysis.quantiles   ratio")
    for shape in [(501, 3), (2001, 32)]:
        values = rng.standard_normal(shape)
        values[values > 2] = np.inf
        stand_in = np.where(np.isposinf(values), 1e300, values)
        reference = np.nanquantile(stand_in, QS, axis=1)
        ours = quantiles(values, QS, axis=1)
        finite = np.isfinite(ours)
        assert np.allclose(ours[finite], reference[finite], rtol=1e-12)
        numpy_s = min(timeit.repeat(lambda: np.nanquantile(stand_in, QS, axis=1), number=20, repeat=5)) / 20
        ours_s = min(timeit.repeat(lambda: quantiles(values, QS, axis=1), number=20, repeat=5)) / 20
        print(
            f"{shape[0]:>5} × {shape[1]:<5}  {numpy_s * 1e3:>22.2f} ms  {ours_s * 1e3:>15.2f} ms  "
            f"{numpy_s / ours_s:>6.0f}×"
        )


if __name__ == "__main__":
    main()
