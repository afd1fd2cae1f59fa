"""The benchmark: prompt suites, a runner that generates and judges them, a report with plots."""
