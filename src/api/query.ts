/**
 * Query-parameter reads for routers. A single-valued parameter given more
 * than once is refused rather than read by its first value (which would let
 * a later, invalid value pass unseen), and a comma-separated list refuses
 * empty items.
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";

function repeated(name: string): HTTPException {
  return new HTTPException(400, {
    message: `Query parameter "${name}" is given more than once: give it once`,
  });
}

/**
 * The one value of query parameter `name`, or undefined when it is absent.
 * @throws {HTTPException} 400 when it is given more than once.
 */
export function singleQuery(c: Context, name: string): string | undefined {
  const values = c.req.queries(name);
  if (values && values.length > 1) throw repeated(name);
  return values?.[0];
}

/**
 * Every query parameter with its one value, for a schema to check.
 * @throws {HTTPException} 400 naming the first parameter given more than once.
 */
export function singleQueries(c: Context): Record<string, string> {
  const all: Record<string, string> = {};
  for (const [name, values] of Object.entries(c.req.queries())) {
    if (values.length > 1) throw repeated(name);
    if (values[0] !== undefined) all[name] = values[0];
  }
  return all;
}

/**
 * The items of `value`, a comma-separated list given as query parameter
 * `name`, as written (not trimmed).
 * @throws {HTTPException} 400 when an item is empty or blank.
 */
export function queryList(name: string, value: string): string[] {
  const items = value.split(",");
  if (items.some((item) => item.trim() === "")) {
    throw new HTTPException(400, {
      message: `Invalid query "${name}": an item of the list is empty: ` +
        "give comma-separated values without empty ones",
    });
  }
  return items;
}
