/**
 * The operator's token lives in this tab's sessionStorage only (gone with the tab, never in localStorage or a
 * URL): a reload keeps the session, another tab logs in on its own.
 */
const KEY = 'sendense.token';

export const session = {
  token: (): string | null => sessionStorage.getItem(KEY),
  login: (token: string) => sessionStorage.setItem(KEY, token),
  logout: () => sessionStorage.removeItem(KEY),
};
