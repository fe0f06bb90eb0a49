"""`python -m byov.report`: the command-line front end lives in `byov.cli.report`."""
from byov.cli.report import run

run()
