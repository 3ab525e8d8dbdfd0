/** Names the training module owns, tfjs-free so that the config schema can list them. */

/** Training objectives (`objective.type`). */
export const OBJECTIVES = ['ikl-at', 'trades', 'pgd-at', 'standard'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];

/** Learning-rate schedules (`schedule.type`, schedules.ts). */
export const LR_SCHEDULES = ['cosine', 'piecewise', 'constant'] as const;
/** Attack-radius schedules over the epochs (`attack.schedule`, schedules.ts). */
export const EPSILON_SCHEDULES = ['constant', 'linear'] as const;
