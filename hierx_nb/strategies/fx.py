"""placeholder"""
from .base import StrategyFailed


def run(ctx):
    raise StrategyFailed("not yet")
