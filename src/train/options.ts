/**
 * How a run's errors name its options. The library's messages speak of options (`batchSize`);
 * the CLI hands in flagName so that the same messages speak of its flags (`--batch-size`).
 */
export type OptionName = (option: string) => string;

/** The library's naming: the option as written in the options object. */
export const optionAsIs: OptionName = (option) => option;

/** The command-line flag of an option: batchSize -> --batch-size. */
export const flagName: OptionName = (option) => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
