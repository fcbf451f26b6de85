# Entry points. The scripts do the work; see README.md and BENCHMARKS.md.
.PHONY: bench bench-dispatch test

# The benchmark of issue 5: release build, closures from this machine's files, table in bench/results/latest.md.
# Extra driver options: make bench BENCH_ARGS="--cold-runs 5"; some parts only: BENCH_ARGS="--parts bigpath,huge,herd"
bench:
	bash scripts/bench.sh $(BENCH_ARGS)

# Dispatch throughput of a pinned system (issue 8): bench/dispatch.py.
bench-dispatch:
	bash scripts/bench.sh dispatch $(BENCH_ARGS)

test:
	bash scripts/test.sh
