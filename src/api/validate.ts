/**
 * Body and parameter validation for routers: invalid JSON or fields become a
 * 400 that names the field, before the handler runs.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { zValidator } from "@hono/zod-validator";
import type * as z from "zod";
import { issueText } from "../types/issue_text.ts";

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
    if (!result.success) throw invalidField(result.error, result.data);
  });
  const read: MiddlewareHandler = async (c, next) => {
    // Read first: a body over the bound fails its read with 413 (body_limit.ts),
    // which the validator would report as malformed JSON. Any other failure
    // to read is left to the validator's 400.
    const raw = await c.req.arrayBuffer().catch((error: unknown) => {
      if (error instanceof HTTPException) throw error;
      return null;
    });
    if (
      raw === null || raw.byteLength === 0 || isJsonType(c.req.header("content-type"))
    ) {
      return await validator(c, next);
    }
    // A body sent without a JSON Content-Type (`curl -d ...`) is read as JSON all the same:
    // never dropped for {}, which would be answered about a field that was sent.
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch {
      throw new HTTPException(400, { message: MALFORMED_JSON });
    }
    const result = await schema.safeParseAsync(value);
    if (!result.success) throw invalidField(result.error, value);
    c.req.addValidatedData("json", result.data as object);
    return await next();
  };
  return read as unknown as MiddlewareHandler<
    Record<string, never>,
    string,
    { in: { json: z.input<S> }; out: { json: z.output<S> } }
  >;
}

/** The answer to a body that is not JSON: hono's validator's own words, kept for every route. */
const MALFORMED_JSON = "Malformed JSON in request body";

/** Whether hono's validator reads a body of `contentType` as JSON (its own test, 4.13). */
function isJsonType(contentType: string | undefined): boolean {
  const media = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  return /^application\/([\w.-]+\+)?json$/i.test(media);
}

/** The 400 naming the first invalid field of `input`. */
function invalidField(error: z.core.$ZodError, input: unknown): HTTPException {
  const issue = error.issues[0];
  const field = issue?.path.map(String).join(".") || "(body)";
  // A missing field reads "required: give a string", not the validator's "Invalid input".
  return new HTTPException(400, {
    message: `Invalid field "${field}": ${issue ? issueText(issue, input) : "invalid value"}`,
  });
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
