"""Entry point: see src/ganlab/report/cli.py."""
from ganlab.report import main

if __name__ == "__main__":
    main()
