import { mulberry32 } from "./prng.js";
import type { User } from "./state.js";
import type { JsonObject } from "./validate.js";

/**
 * The rows the REST API serves. Every division has the same accounts for every app and user,
 * made from its number alone, so a test knows them in advance and two runs agree.
 */

/** A row of an OData collection, with the key Exact pages and addresses it by. */
export interface ApiRow {
  /** Orders the collection; `$skiptoken` resumes after the row with this key. */
  sortKey: string;
  /** The key as OData writes it: `guid'…'` or a number, for `$skiptoken` and `__metadata.uri`. */
  keyText: string;
  entity: JsonObject;
}

/** 150 + division mod 100 accounts: always several pages of 60. */
export function accountCount(division: number): number {
  return 150 + (division % 100);
}

const NAME_PARTS = ["Noord", "Zuid", "Oost", "West", "Groen", "Blauw", "Hoog", "Klein", "Oud", "Nieuw"];
const TRADES = ["Bakkerij", "Techniek", "Transport", "Installaties", "Advies", "Bouw", "Handel", "Zorg"];
const FORMS = ["B.V.", "V.O.F.", "N.V.", "& Zn."];
const CITIES = ["Amsterdam", "Rotterdam", "Utrecht", "Delft", "Zwolle", "Groningen", "Eindhoven", "Breda"];
/** Created dates fall in the ten years from 2015-01-01. */
const CREATED_FROM_MS = Date.UTC(2015, 0, 1);
const CREATED_SPAN_MS = 10 * 365 * 24 * 60 * 60 * 1000;

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** A version-4-shaped GUID from the PRNG, lower case as Exact writes them. */
function guid(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = "4";
  hex[16] = (8 + Math.floor(random() * 4)).toString(16);
  const text = hex.join("");
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
}

/** `crm/Accounts` of a division, ordered by `ID` as Exact pages them. */
export function accountRows(division: number): ApiRow[] {
  const random = mulberry32(division);
  const rows: ApiRow[] = [];
  for (let number = 1; number <= accountCount(division); number++) {
    const id = guid(random);
    const name = `${pick(random, NAME_PARTS)} ${pick(random, TRADES)} ${pick(random, FORMS)}`;
    const createdMs = CREATED_FROM_MS + Math.floor(random() * (CREATED_SPAN_MS / 1000)) * 1000;
    rows.push({
      sortKey: id,
      keyText: `guid'${id}'`,
      entity: {
        ID: id,
        // Exact's account codes are right-aligned in 18 characters.
        Code: String(number).padStart(18, " "),
        Name: name,
        City: pick(random, CITIES),
        Country: "NL",
        Email: `info@account-${number}.example`,
        Status: "C",
        IsSupplier: random() < 0.2,
        Created: `/Date(${createdMs})/`,
      },
    });
  }
  return rows.sort((a, b) => (a.sortKey < b.sortKey ? -1 : 1));
}

/** Ten digits, so that division numbers order as strings. */
export function divisionSortKey(division: number): string {
  return String(division).padStart(10, "0");
}

/** `system/Divisions`: the divisions the user can open, ordered by `Code`. */
export function divisionRows(user: User): ApiRow[] {
  return user.divisions.map((code) => ({
    sortKey: divisionSortKey(code),
    keyText: String(code),
    entity: { Code: code, Current: code === user.division, Description: `Division ${code}`, Hid: code },
  }));
}
