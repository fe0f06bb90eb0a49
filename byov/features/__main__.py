"""`python -m byov.features`: the command-line front end lives in `byov.cli.features`."""
from byov.cli.features import run

if __name__ == "__main__":
    run()
