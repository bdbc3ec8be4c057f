/**
 * The two fields of fabricd's RFC 9421 profile on the wire: writing the
 * `@signature-params` value of `Signature-Input`, and parsing
 * `Signature-Input` and `Signature`, both in canonical RFC 8941 form. The
 * fields as fabricd writes them take a hand-written path; any other spelling
 * takes the general RFC 8941 parser and serializer, so the bytes written and
 * the answers given are the same either way.
 *
 * @module
 */

import {
  type BareItem,
  type Dictionary,
  type InnerList,
  parseDictionary,
  serializeDictionary,
  serializeInnerList,
} from "structured-headers";
import { fromBase64 } from "./_bytes.ts";
import {
  ALG,
  componentsMessage,
  fail,
  type Failure,
  LABEL,
  type ParsedSignature,
  type Profile,
  type SignatureParams,
} from "./_signature.ts";

/** Serializes the `@signature-params` value, parameters in the profile's order. */
export function serializeParams(profile: Profile, params: SignatureParams): string {
  const alg = params.alg ?? ALG;
  const { created, expires, nonce, keyid } = params;
  // The canonical form written by hand: one template instead of the general
  // serializer's item walk, for the values fabricd signs (integers in range,
  // strings with nothing to escape). Anything else takes the general path,
  // which writes the same bytes or throws its own error.
  if (
    isSfInteger(created) && (expires === undefined || isSfInteger(expires)) &&
    PLAIN_STRING.test(nonce) && PLAIN_STRING.test(keyid) && PLAIN_STRING.test(alg) &&
    PLAIN_STRING.test(profile.tag)
  ) {
    const expiry = expires === undefined ? "" : `;expires=${expires}`;
    return `${
      componentList(profile)
    };created=${created}${expiry};nonce="${nonce}";keyid="${keyid}";alg="${alg}";tag="${profile.tag}"`;
  }
  const map = new Map<string, BareItem>([["created", created]]);
  if (expires !== undefined) map.set("expires", expires);
  map.set("nonce", nonce);
  map.set("keyid", keyid);
  map.set("alg", alg);
  map.set("tag", profile.tag);
  return serializeInnerList([profile.components.map((name) => [name, new Map()]), map]);
}

/** An RFC 8941 string that serializes as itself between quotes: visible ASCII and space, no `"` or `\`. */
const PLAIN_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/** The largest RFC 8941 integer. */
const MAX_SF_INTEGER = 999_999_999_999_999;

function isSfInteger(value: number): boolean {
  return Number.isInteger(value) && Math.abs(value) <= MAX_SF_INTEGER;
}

// The serialized inner list of each profile's components, without parameters.
const componentLists = new WeakMap<Profile, string>();

function componentList(profile: Profile): string {
  let list = componentLists.get(profile);
  if (list === undefined) {
    list = serializeInnerList([profile.components.map((name) => [name, new Map()]), new Map()]);
    componentLists.set(profile, list);
  }
  return list;
}

/**
 * Parses `Signature-Input` and `Signature` and picks the `sig1` signature.
 * Both fields must be in canonical structured-field form, as fabricd writes
 * them, so that one signature has exactly one spelling.
 */
export function parseSignature(headers: Headers, profile: Profile): ParsedSignature | Failure {
  const input = headers.get("signature-input");
  if (input === null) {
    return fail(`Missing Signature-Input header: sign the ${profile.noun} with the fabric key`);
  }
  const field = headers.get("signature");
  if (field === null) {
    return fail(`Missing Signature header: sign the ${profile.noun} with the fabric key`);
  }
  return parseFast(input, field) ?? parseGeneral(input, field, profile);
}

// The fields as fabricd writes them, matched whole: `sig1` alone, an inner
// list of plain strings, the parameters in fabricd's order as integers and
// plain strings. A field of any other shape (a second label, another order,
// escapes, tokens, ...) goes to the general RFC 8941 parser, which gives the
// same answer for these and the documented refusals for the rest. The label
// is LABEL, written out.
const INTEGER = "(0|-?[1-9][0-9]{0,14})";
const STRING = '"([^"\\\\]*)"';
const FAST_INPUT = new RegExp(
  `^sig1=(\\((?:"[^"\\\\]*"(?: "[^"\\\\]*")*)?\\));created=${INTEGER}(?:;expires=${INTEGER})?` +
    `;nonce=${STRING};keyid=${STRING};alg=${STRING};tag=${STRING}$`,
);
const FAST_SIGNATURE = /^sig1=:([A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==):$/;
const ASCII = /^[\x20-\x7e]*$/;

/** Parses fields of fabricd's own shape without the general parser; undefined for any other. */
function parseFast(input: string, field: string): ParsedSignature | undefined {
  const signatureMatch = FAST_SIGNATURE.exec(field);
  const m = signatureMatch && ASCII.test(input) ? FAST_INPUT.exec(input) : null;
  if (!signatureMatch || !m) return undefined;
  // A byte sequence has one spelling: no stray bits in the last character.
  const bytes = fromBase64(signatureMatch[1]!);
  if (bytes === undefined) return undefined;
  const params = new Map<string, BareItem>([["created", Number(m[2])]]);
  if (m[3] !== undefined) params.set("expires", Number(m[3]));
  params.set("nonce", m[4]!).set("keyid", m[5]!).set("alg", m[6]!).set("tag", m[7]!);
  const list = m[1]!;
  return {
    components: list === "()" ? [] : list.slice(2, -2).split('" "'),
    params,
    paramsValue: input.slice(LABEL.length + 1),
    signature: bytes,
  };
}

/**
 * Parses the two fields with the general RFC 8941 parser and checks that they
 * are canonical. {@linkcode parseSignature} gives the same answer, faster for
 * the common shape; exported so that tests can hold the two side by side.
 */
export function parseGeneral(
  input: string,
  field: string,
  profile: Profile,
): ParsedSignature | Failure {
  const inputs = parseCanonical(input);
  if (inputs === undefined) {
    return fail("Malformed Signature-Input header: it must be a canonical RFC 9421 field");
  }
  const signatures = parseCanonical(field);
  if (signatures === undefined) {
    return fail("Malformed Signature header: it must be a canonical RFC 9421 field");
  }
  const member = inputs.get(LABEL);
  if (member === undefined || !Array.isArray(member[0])) {
    return fail(`Signature-Input has no inner list labelled "${LABEL}": sign with fabricd`);
  }
  const signature = signatures.get(LABEL)?.[0];
  if (
    !(signature instanceof ArrayBuffer) ||
    (signature.byteLength !== 64 && signature.byteLength !== 32)
  ) {
    return fail(`Signature "${LABEL}" must be a 64-byte Ed25519 or 32-byte HMAC signature`);
  }
  const components: string[] = [];
  for (const [name, params] of member[0]) {
    if (typeof name !== "string" || params.size > 0) return fail(componentsMessage(profile));
    components.push(name);
  }
  let paramsValue: string;
  try {
    paramsValue = serializeInnerList(member as InnerList);
  } catch {
    return fail("Malformed Signature-Input header: it must be a canonical RFC 9421 field");
  }
  return { components, params: member[1], paramsValue, signature: new Uint8Array(signature) };
}

function parseCanonical(field: string): Dictionary | undefined {
  try {
    const dictionary = parseDictionary(field);
    return serializeDictionary(dictionary) === field ? dictionary : undefined;
  } catch {
    return undefined;
  }
}
