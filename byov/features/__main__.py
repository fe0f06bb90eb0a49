"""`python -m byov.features`: the command-line front end lives in `byov.cli.features`."""
from byov.cli.features import run

run()
