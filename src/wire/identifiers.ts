import { Transform } from 'class-transformer';
import { ValidationOptions, registerDecorator } from 'class-validator';

/**
 * The one shape of an identifier the hub takes from outside (an agent's inventory, a remote hub's points) and
 * later puts into a file name: vmId, diskId, restorePointId. It is the shape the product already produces
 * (`rp-<timestamp>-<hex>`, `disk-<key>`, UUIDs, libvirt domain names) and the qemu-image inventory accepts,
 * so no id on record is refused by it. A leading letter or digit keeps out `.`/`..` and option-like `-x`;
 * the character set keeps out `/`, NUL and whitespace, so the id is always one path component.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A uuid as the hub writes them (lowercase): agent, job and export ids; UUID_TEXT for patterns that hold one. */
export const UUID_TEXT = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
export const UUID_PATTERN = new RegExp(`^${UUID_TEXT}$`);

const DESCRIPTION = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, with no '..'";

/** `..` inside an id is harmless as one path component, but refusing it costs nothing and removes the question. */
export function isSafeIdentifier(value: unknown): value is string {
  return typeof value === 'string' && IDENTIFIER_PATTERN.test(value) && !value.includes('..');
}

/** Why `value` is not a safe identifier, or null when it is; `what` names the field in the message. */
export function identifierProblem(what: string, value: unknown): string | null {
  if (isSafeIdentifier(value)) return null;
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…(${value.length} characters)` : value) : typeof value;
  return `${what} ${shown} is not a valid identifier (${DESCRIPTION})`;
}

/** class-validator decorator for DTO fields that carry an identifier (see IDENTIFIER_PATTERN). */
export function IsSafeIdentifier(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'isSafeIdentifier',
      target: target.constructor,
      propertyName: propertyName as string,
      options: { message: `$property must be ${DESCRIPTION}`, ...options },
      validator: { validate: (value: unknown) => isSafeIdentifier(value) },
    });
  };
}

/**
 * What virsh reads as a domain id (all digits) or a uuid (32 hex digits, dashes between pairs) before it tries a
 * name: a new domain named so would be found as another domain by every later lookup. Not a name, then.
 */
/**
 * Characters that change how a terminal or a page shows text rather than showing one: controls (ESC, CR), format
 * characters (bidirectional overrides, zero-widths) and line or paragraph separators. Text another party wrote (an
 * agent's reason, a disk's name from a VM's configuration) is shown to operators without them.
 */
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
export const PRINTABLE_NAME = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]{1,128}$/u;

/** The text with every character that is not printable replaced by `?`. */
export function printable(text: string): string {
  return text.replace(NOT_PRINTABLE, '?');
}

/** A DTO field taken as text another party wrote: stored and shown `printable`. */
export function ToPrintable(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? printable(value) : value));
}

export const DOMAIN_LOOKUP_FORM = /^(?:\d+|(?:[0-9a-f]{2}-*){16})$/i;
export const DOMAIN_LOOKUP_FORM_MESSAGE = 'name must not be all digits or a uuid (virsh reads those as a domain id or uuid)';
