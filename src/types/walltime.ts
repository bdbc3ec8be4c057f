/**
 * Walltimes, as a pilot request, an agent's `walltime` option and the
 * `slurm://` launcher take them: one parser for all three, so a walltime
 * that one accepts is never refused by the next (docs/services.md,
 * docs/slurm.md).
 * @module
 */

/** The walltime forms, as an error message lists them. */
export const WALLTIME_FORMS = "minutes (30), a unit (90s, 30m, 2h), HH:MM:SS or D-HH:MM:SS";

const NUMBER = /^(\d{1,7})([smh]?)$/;
const CLOCK = /^(?:(\d{1,3})-([01]?\d|2[0-3])|(\d{1,4})):([0-5]\d):([0-5]\d)$/;
const UNIT_SECONDS = { "": 60, s: 1, m: 60, h: 3600 } as const;

/**
 * The seconds of walltime `text`: minutes (`30`), a number with a unit
 * (`90s`, `30m`, `2h`), `HH:MM:SS` or `D-HH:MM:SS` (hours 0-23 after a day
 * count); null for anything else, and for a walltime of zero.
 */
export function walltimeSeconds(text: string): number | null {
  const number = NUMBER.exec(text);
  let seconds: number;
  if (number) {
    seconds = Number(number[1]) * UNIT_SECONDS[number[2] as keyof typeof UNIT_SECONDS];
  } else {
    const clock = CLOCK.exec(text);
    if (!clock) return null;
    const [days, dayHours, hours, minutes, secs] = clock.slice(1).map((v) => Number(v ?? 0));
    seconds = ((days! * 24 + dayHours! + hours!) * 60 + minutes!) * 60 + secs!;
  }
  return seconds > 0 ? seconds : null;
}

/** Whether `text` is a walltime above zero in one of the forms of {@linkcode walltimeSeconds}. */
export function isWalltime(text: string): boolean {
  return walltimeSeconds(text) !== null;
}

/**
 * Whole minutes of walltime `text`, as Slurm's `--time=MINUTES` takes them:
 * seconds are rounded up to the next minute (`90s` is 2, `1:00:01` is 61),
 * so a job never gets less time than asked.
 * @throws {RangeError} when `text` is no walltime (see {@linkcode walltimeSeconds}).
 */
export function walltimeMinutes(text: string): number {
  const seconds = walltimeSeconds(text.trim());
  if (seconds === null) {
    throw new RangeError(`Invalid walltime "${text}": use ${WALLTIME_FORMS}, above zero`);
  }
  return Math.ceil(seconds / 60);
}
