"""Entry point: see src/ganlab/train.py."""
from ganlab.train import main

if __name__ == "__main__":
    main()
