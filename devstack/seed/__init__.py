"""Realistic seed data for the demo, the tests and the benchmark: a platform drawn from a seed and loaded with COPY."""

from devstack.seed.generator import PlatformGenerator, SeedOptions
from devstack.seed.loader import SeedRefused, SeedReport, hour_aligned_chunks, is_seeded, seed

__all__ = ["PlatformGenerator", "SeedOptions", "SeedRefused", "SeedReport", "hour_aligned_chunks", "is_seeded", "seed"]
