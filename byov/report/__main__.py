"""`python -m byov.report`: the command-line front end lives in `byov.cli.report`."""
from byov.cli.report import run

if __name__ == "__main__":
    run()
