"""The bandit engine. Until the engine issue lands, the policy is uniform random."""
