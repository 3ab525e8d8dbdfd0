/** Names the training module owns, tfjs-free so that the config schema can list them. */

/** Training objectives (`objective.type`). */
export const OBJECTIVES = ['ikl-at', 'trades', 'pgd-at', 'standard', 'ikl-kd', 'kd', 'dkd'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];
/** The knowledge-distillation objectives: they need a teacher (config `teacher`, settings in `distill`). */
export const KD_OBJECTIVES = ['ikl-kd', 'kd', 'dkd'] as const satisfies readonly ObjectiveName[];
export type KdObjectiveName = (typeof KD_OBJECTIVES)[number];
export const isKdObjective = (name: ObjectiveName): name is KdObjectiveName => (KD_OBJECTIVES as readonly string[]).includes(name);

/** Learning-rate schedules (`schedule.type`, schedules.ts). */
export const LR_SCHEDULES = ['cosine', 'piecewise', 'constant', 'onecycle'] as const;
/** Attack-radius schedules over the epochs (`attack.schedule`, schedules.ts). */
export const EPSILON_SCHEDULES = ['constant', 'linear'] as const;
