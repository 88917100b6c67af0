#!/usr/bin/env python3
"""Writes small .npy files with numpy.save into testdata/golden/npy/, for the Swift .npy
reader and writer tests (the writer must reproduce these bytes exactly).

Run from the repository root:  python testdata/scripts/make_npy_goldens.py
"""
import os

import numpy as np

OUT = "testdata/golden/npy"


def main():
    os.makedirs(OUT, exist_ok=True)
    np.save(f"{OUT}/f32_vector.npy", np.array([1.5, -2.0, 0.1, 3.0e38, -0.0], dtype="<f4"))
    np.save(f"{OUT}/f32_scalar.npy", np.array(7.25, dtype="<f4"))
    np.save(f"{OUT}/f32_empty.npy", np.zeros((0, 3), dtype="<f4"))
    np.save(f"{OUT}/f32_cube.npy", np.arange(2 * 3 * 4, dtype="<f4").reshape(2, 3, 4))
    np.save(f"{OUT}/i64_matrix.npy", np.array([[1, -2, 3], [2**40, 0, -(2**33)]], dtype="<i8"))
    np.save(f"{OUT}/f16_vector.npy", np.array([1.0, 0.5, -65504.0], dtype="<f2"))
    np.save(f"{OUT}/f64_vector.npy", np.array([0.1, 1e-300], dtype="<f8"))
    np.save(f"{OUT}/u8_vector.npy", np.array([0, 255, 7], dtype="u1"))


if __name__ == "__main__":
    main()
