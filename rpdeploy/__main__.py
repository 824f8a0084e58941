"""`python -m rpdeploy`."""

from rpdeploy.cli import main

if __name__ == "__main__":
    main()
