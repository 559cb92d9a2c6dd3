/**
 * qemu-img sizes a new LUKS header by timing 32768 PBKDF2 rounds on the thread's CPU clock, and where that clock
 * ticks coarsely the rounds read as no time at all and qemu gives up with "Unable to get accurate CPU usage" (17 of
 * 40 creates on an idle machine here). Only qemu's own creates need it: the hub writes its LUKS headers itself. Such
 * a create is simply made again; forty tries make a failure by chance about 1e-16.
 */
export async function retryUnclockedPbkdf<T>(create: () => Promise<T>, attempts = 40): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (error) {
      const { message, stderr } = error as { message?: string; stderr?: string };
      const unclocked = `${message ?? ''}${stderr ?? ''}`.includes('Unable to get accurate CPU usage');
      if (attempt >= attempts || !unclocked) throw error;
    }
  }
}
