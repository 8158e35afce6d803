/**
 * The C values the TF-IDF + logistic-regression baseline chooses from by default. A module of
 * its own so that `revcol baseline --help` can show them without loading the baseline.
 */
export const DEFAULT_C_GRID: readonly number[] = [0.1, 1, 10, 100, 1000];
