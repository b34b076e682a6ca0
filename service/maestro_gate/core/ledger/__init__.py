"""The audit ledger's math: record bodies, hash chain, Merkle tree, checkpoints, verification."""
