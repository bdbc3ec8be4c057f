/**
 * Body and parameter validation for routers: invalid JSON or fields become a
 * 400 that names the field, before the handler runs.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { zValidator } from "@hono/zod-validator";
import type * as z from "zod";

/**
 * Middleware validating the JSON body against `schema`; the handler reads it
 * with `c.req.valid("json")`.
 *
 * @throws {HTTPException} 400 naming the first invalid field.
 */
export function jsonBody<S extends z.ZodType>(
  schema: S,
): MiddlewareHandler<
  Record<string, never>,
  string,
  { in: { json: z.input<S> }; out: { json: z.output<S> } }
> {
  const validator = zValidator("json", schema, (result) => {
    if (!result.success) {
      const issue = result.error.issues[0];
      const field = issue?.path.map(String).join(".") || "(body)";
      throw new HTTPException(400, {
        message: `Invalid field "${field}": ${issue?.message ?? "invalid value"}`,
      });
    }
  });
  const read: MiddlewareHandler = async (c, next) => {
    // Read first: a body over the bound fails its read with 413 (body_limit.ts),
    // which the validator would report as malformed JSON. Any other failure
    // to read is left to the validator's 400.
    await c.req.arrayBuffer().catch((error: unknown) => {
      if (error instanceof HTTPException) throw error;
    });
    return await validator(c, next);
  };
  return read as unknown as MiddlewareHandler<
    Record<string, never>,
    string,
    { in: { json: z.input<S> }; out: { json: z.output<S> } }
  >;
}

/**
 * Validates one path parameter.
 * @throws {HTTPException} 400 naming the parameter.
 */
export function validParam<S extends z.ZodType>(c: Context, name: string, schema: S): z.infer<S> {
  const result = schema.safeParse(c.req.param(name));
  if (result.success) return result.data;
  throw new HTTPException(400, {
    message: `Invalid path parameter "${name}": ${result.error.issues[0]!.message}`,
  });
}
