"""`python -m byov.benchmark`: the command-line front end lives in `byov.cli.benchmark`."""
from byov.cli.benchmark import run

run()
