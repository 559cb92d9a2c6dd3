/** The value after `name` in a command line (`--vm ID`), shared by the client commands and the agent program. */
export function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
