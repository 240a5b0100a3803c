"""Export strategies, exact ones first. Each is ``run(ExportContext) -> StrategyOutput``."""
from . import dynamo, fx, htp

STRATEGIES = {"dynamo": dynamo.run, "htp": htp.run, "fx": fx.run}
ORDER = ("dynamo", "htp", "fx")
