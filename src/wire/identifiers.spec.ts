import 'reflect-metadata';
import { validateSync } from 'class-validator';
import { IDENTIFIER_PATTERN, IsSafeIdentifier, identifierProblem, isSafeIdentifier } from './identifiers';

describe('safe identifiers', () => {
  it.each(['pgtest1', 'vda', 'disk-2000', 'rp-20261126090000-1a2b3c4d', '0b9c1e5e-3f7a-4a8e-9c61-2f1f6d8c0a11', 'web_01.prod', 'a'.repeat(128)])(
    'accepts the id shapes the product produces: %s',
    (id) => expect(isSafeIdentifier(id)).toBe(true),
  );

  it.each([
    ['parent directory', '..'],
    ['traversal inside', 'vm-b/../../../../x'],
    ['a slash', 'vm/b'],
    ['a backslash', 'vm\\b'],
    ['NUL', 'vm\0b'],
    ['a newline', 'vm\nb'],
    ['300 characters', 'a'.repeat(300)],
    ['129 characters', 'a'.repeat(129)],
    ['empty', ''],
    ['a leading dot', '.hidden'],
    ['a leading dash (an option to a tool)', '-rf'],
    ['two dots inside', 'a..b'],
    ['a space', 'vm b'],
  ])('refuses %s', (_why, id) => {
    expect(isSafeIdentifier(id)).toBe(false);
    expect(identifierProblem('vmId', id)).toMatch(/^vmId .* is not a valid identifier/);
  });

  it('refuses what is not a string', () => {
    for (const v of [undefined, null, 42, {}, ['vm']]) expect(isSafeIdentifier(v)).toBe(false);
  });

  it('shortens a long id in its message', () => {
    expect(identifierProblem('diskId', 'x'.repeat(300))).toContain('(300 characters)');
    expect(identifierProblem('diskId', 'x'.repeat(300))!.length).toBeLessThan(250);
  });

  it('keeps the pattern the qemu-image inventory already accepts, so no id on record is refused', () => {
    expect(IDENTIFIER_PATTERN.source).toBe('^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$');
  });

  it('the DTO decorator refuses a bad id with a message naming the field, and accepts a good one', () => {
    class Dto {
      @IsSafeIdentifier()
      vmId!: unknown;
    }
    const bad = Object.assign(new Dto(), { vmId: '../etc' });
    const errors = validateSync(bad);
    expect(errors).toHaveLength(1);
    expect(Object.values(errors[0].constraints ?? {})[0]).toMatch(/^vmId must be 1-128 characters/);
    expect(validateSync(Object.assign(new Dto(), { vmId: 'vm-1' }))).toEqual([]);
  });
});
