import { fail } from '../core/errors.js';

/**
 * Linear warm-up from `warmupStartLr` to `lr` over the first `warmupSteps` steps, then a
 * half cosine from `lr` down to `minLr` at `totalSteps` (and `minLr` after it).
 * `step` counts from 0; steps may be fractional (the trainer counts in samples).
 */
export function warmupCosine(step: number, totalSteps: number, warmupSteps: number, lr: number, minLr: number, warmupStartLr = minLr): number {
  if (!(totalSteps > 0)) fail(`the schedule needs totalSteps > 0, got ${totalSteps}`);
  if (!(warmupSteps >= 0)) fail(`warm-up steps must be ≥ 0, got ${warmupSteps}`);
  if (step < warmupSteps) return warmupStartLr + ((lr - warmupStartLr) * step) / warmupSteps;
  const decaySteps = totalSteps - warmupSteps;
  const progress = decaySteps > 0 ? Math.min(1, Math.max(0, (step - warmupSteps) / decaySteps)) : 1;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
