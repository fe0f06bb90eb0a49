"""`python -m byov.grid`: the command-line front end lives in `byov.cli.grid`."""
from byov.cli.grid import run

if __name__ == "__main__":
    run()
