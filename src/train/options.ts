/**
 * How a run's errors name its options. The library's messages speak of options (`batchSize`);
 * the CLI hands in flagName so that the same messages speak of its flags (`--batch-size`).
 */
export type OptionName = (option: string) => string;

/** The library's naming: the option as written in the options object. */
export const optionAsIs: OptionName = (option) => option;

/** The command-line flag of an option: batchSize -> --batch-size. */
export const flagName: OptionName = (option) => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The optimisation settings a training recipe takes from its caller (either family). */
export interface TrainingSettingOptions {
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate of AdamW. */
  lr?: number;
  weightDecay?: number;
  warmupEpochs?: number;
  labelSmoothing?: number;
  /** Decay of the evaluated weight average; 0 for none. */
  ema?: number;
  /** Which epoch best.safetensors keeps: the best on the evaluation data, or the last. */
  keep?: 'best' | 'last';
}
