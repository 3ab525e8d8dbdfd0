/** Training objectives (`objective.type`), tfjs-free so that the config schema can list them. */
export const OBJECTIVES = ['ikl-at', 'trades', 'pgd-at', 'standard'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];
