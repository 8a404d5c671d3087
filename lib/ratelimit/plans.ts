/** Requests allowed per clock-aligned window; a window left out is not limited. */
export interface Limits {
  perMinute: number | null
  perHour: number | null
}

/** A plan: its limits per window. A plan with neither (enterprise) takes its limits from each key. */
export interface Plan {
  perMinute?: number
  perHour?: number
}

/** The Metalogue plans: free 60/min and 1,000/h, pro 300/min and 10,000/h, enterprise per key. */
export const DEFAULT_PLANS: Readonly<Record<string, Readonly<Plan>>> = Object.freeze({
  free: Object.freeze({ perMinute: 60, perHour: 1000 }),
  pro: Object.freeze({ perMinute: 300, perHour: 10_000 }),
  enterprise: Object.freeze({})
})

export function hasLimits (limits: Plan | Limits): boolean {
  return typeof limits.perMinute === 'number' || typeof limits.perHour === 'number'
}

/** A key's limits: its own where it has them, its plan's otherwise. */
export function effectiveLimits (plan: Plan | undefined, own: Partial<Limits>): Limits {
  return {
    perMinute: own.perMinute ?? plan?.perMinute ?? null,
    perHour: own.perHour ?? plan?.perHour ?? null
  }
}
