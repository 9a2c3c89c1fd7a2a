"""Pure scoring functions: verdict and difficulty parsing, Elo and final scores, judge
agreement, KCenterGreedy, deduplication and decontamination (one module each)."""
