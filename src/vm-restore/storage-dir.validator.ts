import { ValidateBy, ValidationOptions } from 'class-validator';
import { storageDirProblem } from '../wire/storage-dir';

/** A restore's storageDir as far as its path tells (src/wire/storage-dir.ts); the agent checks the directory itself before 202. */
export function IsStorageDir(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isStorageDir',
      validator: {
        validate: (value: unknown) => typeof value === 'string' && storageDirProblem(value) === null,
        defaultMessage: (args) => (typeof args?.value === 'string' ? storageDirProblem(args.value) : null) ?? 'storageDir must be a string',
      },
    },
    options,
  );
}
