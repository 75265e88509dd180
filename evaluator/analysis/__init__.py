"""Pure computation over a run read once (evaluator.results): dataclasses out; no printing, no files."""
